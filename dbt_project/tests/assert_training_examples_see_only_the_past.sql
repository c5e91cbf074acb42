-- Point in time: every event in a training example's behaviour sequence happened before the decision.
-- (seq_age_hours are hours between each event and the decision day's start; all must be > 0.)
select decision_id, seq_age_hours
from {{ ref('fct_training_examples') }}
where len(seq_age_hours) > 0 and list_min(seq_age_hours) <= 0
