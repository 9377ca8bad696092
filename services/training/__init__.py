"""The training service: programmes, cohorts filled by need, attendance and completion, mentoring, the halal pathway."""
