"""The warehouse target switch: dbt's profile (rendered by dbt itself) and the Dagster resource read the same
environment, the embedded file stays the default, and a second DuckDB file attached as the shared warehouse
works end to end (ingestion writes it, a dbt model builds in it). No network."""

from __future__ import annotations

import os
import subprocess

import duckdb
import pytest

from orchestration.resources import open_warehouse
from orchestration.settings import DBT_PROJECT_DIR, PromoPaths, WarehouseTarget, warehouse_target

ENV = ("PROMO_DBT_TARGET", "PROMO_WAREHOUSE", "PROMO_WAREHOUSE_DATA_PATH", "PROMO_DUCKDB_EXTENSIONS")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def render_profile(monkeypatch: pytest.MonkeyPatch, **env: str):
    """dbt's own profile rendering (target chosen by env_var, Jinja, native types, adapter credentials)."""
    from dbt.adapters.factory import load_plugin
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    set_invocation_context(dict(os.environ))  # dbt's env_var reads this snapshot, as one dbt invocation would
    set_from_args(type("Args", (), {})(), {})
    load_plugin("duckdb")
    raw = read_profile(str(DBT_PROJECT_DIR))
    return Profile.from_raw_profile_info(raw["promoloop"], "promoloop", ProfileRenderer({}))


def test_profile_default_is_the_embedded_file(monkeypatch, tmp_path):
    profile = render_profile(monkeypatch, PROMO_HOME=str(tmp_path))
    creds = profile.credentials
    assert profile.target_name == "dev"
    assert creds.path == f"{tmp_path}/warehouse.duckdb"
    assert creds.database == "warehouse" and not creds.attach and not creds.extensions
    target = warehouse_target(tmp_path)
    assert (target.target, target.location, target.database) == ("dev", creds.path, "warehouse")


def test_profile_motherduck_path(monkeypatch, tmp_path):
    profile = render_profile(monkeypatch, PROMO_WAREHOUSE="md:promo_prod", PROMO_DUCKDB_EXTENSIONS="motherduck, httpfs")
    creds = profile.credentials
    assert (profile.target_name, creds.path, creds.database) == ("dev", "md:promo_prod", "promo_prod")
    assert creds.is_motherduck and creds.extensions == ["motherduck", "httpfs"]
    target = warehouse_target(tmp_path)  # the resource sees the same thing, the URI untouched
    assert target == WarehouseTarget("dev", "md:promo_prod", ("motherduck", "httpfs"), None)
    assert target.database == "promo_prod"
    with pytest.raises(ValueError, match="PROMO_WAREHOUSE='md:promo_prod' is not a local file"):
        _ = PromoPaths(tmp_path).warehouse


def test_profile_shared_attaches_and_writes_there(monkeypatch, tmp_path):
    profile = render_profile(
        monkeypatch, PROMO_DBT_TARGET="shared", PROMO_WAREHOUSE="ducklake:/data/catalog.ducklake",
        PROMO_WAREHOUSE_DATA_PATH="s3://bucket/promoloop/", PROMO_DUCKDB_EXTENSIONS="ducklake,httpfs",
    )
    creds = profile.credentials
    assert profile.target_name == "shared"
    assert creds.path == ":memory:" and creds.database == "promoloop"
    (attachment,) = creds.attach
    assert (attachment.path, attachment.alias) == ("ducklake:/data/catalog.ducklake", "promoloop")
    assert attachment.to_sql() == (
        "ATTACH IF NOT EXISTS 'ducklake:/data/catalog.ducklake' AS promoloop (DATA_PATH 's3://bucket/promoloop/')"
    )
    target = warehouse_target(tmp_path)
    assert (target.target, target.location, target.data_path) == ("shared", "ducklake:/data/catalog.ducklake", "s3://bucket/promoloop/")


def test_bad_target_settings_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMO_DBT_TARGET", "prod")
    with pytest.raises(ValueError, match="PROMO_DBT_TARGET='prod' is not one of dev, shared"):
        warehouse_target(tmp_path)
    monkeypatch.setenv("PROMO_DBT_TARGET", "shared")
    with pytest.raises(ValueError, match="PROMO_DBT_TARGET=shared needs PROMO_WAREHOUSE"):
        warehouse_target(tmp_path)
    monkeypatch.setenv("PROMO_WAREHOUSE", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("PROMO_DUCKDB_EXTENSIONS", "httpfs;drop")
    with pytest.raises(ValueError, match="PROMO_DUCKDB_EXTENSIONS: 'httpfs;drop'"):
        warehouse_target(tmp_path)


def test_shared_duckdb_file_end_to_end(monkeypatch, tmp_path):
    """Ingestion (Dagster, in-process) and dbt both write a second DuckDB file attached as `promoloop`."""
    from orchestration.dbt import dbt_executable
    from orchestration.definitions import build_definitions
    from orchestration.demo import run_job
    from orchestration.instance import get_instance
    from orchestration.resources import PromoHome

    home, shared = tmp_path / "home", tmp_path / "shared" / "warehouse.duckdb"
    shared.parent.mkdir()
    duckdb.connect(str(shared)).close()  # the shared database exists (as on a shared volume)
    for folder, text in {
        "users": "user_id,consent_push,consent_sms,consent_email\nu1,true,false,true\nu2,false,false,true\n",
        "products": "product_id,title,category,price\np1,Pen,office,2.5\np2,Mug,kitchen,8\n",
        "offers": "offer_id,offer_type,value\no1,percent_off,0.1\n",
    }.items():
        (home / "landing" / folder).mkdir(parents=True)
        (home / "landing" / folder / f"{folder}.csv").write_text(text)
    monkeypatch.setenv("PROMO_HOME", str(home))
    monkeypatch.setenv("PROMO_DBT_TARGET", "shared")
    monkeypatch.setenv("PROMO_WAREHOUSE", str(shared))

    run_job(build_definitions(), get_instance(home / "dagster"), "ingest_catalog_job")
    PromoHome().export_env()
    proc = subprocess.run(
        [dbt_executable(), "run", "--select", "stg_products", "dim_products", "--profiles-dir", str(DBT_PROJECT_DIR),
         "--project-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "dbt_target")],
        capture_output=True, text=True, cwd=DBT_PROJECT_DIR,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]

    assert not (home / "warehouse.duckdb").exists()  # nothing went to the embedded default
    con = duckdb.connect(str(shared), read_only=True)
    try:
        assert con.execute("select count(*) from raw.users").fetchone() == (2,)
        assert con.execute("select count(*) from marts.dim_products").fetchone() == (2,)
    finally:
        con.close()
    with PromoHome().connect(read_only=True) as con:  # the resource reads it back through the attach
        assert con.execute("select current_database()").fetchone() == ("promoloop",)
        assert con.execute("select count(*) from marts.dim_products").fetchone() == (2,)


def test_duckdb_memory_limit_reaches_every_session(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMO_DUCKDB_MEMORY_LIMIT", "plenty")
    with pytest.raises(ValueError, match="PROMO_DUCKDB_MEMORY_LIMIT='plenty' is not a DuckDB memory limit"):
        warehouse_target(tmp_path)
    monkeypatch.setenv("PROMO_DUCKDB_MEMORY_LIMIT", "1GiB")
    con = open_warehouse(warehouse_target(tmp_path))
    try:
        assert con.execute("select current_setting('memory_limit')").fetchall()[0][0] == "1.0 GiB"
    finally:
        con.close()
