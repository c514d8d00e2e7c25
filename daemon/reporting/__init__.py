"""Pictures of an analysis: the report page (self-contained HTML) and its PNG, shared by
`aimusicd report` and the daemon's dashboard, plus the history and evaluation plots."""
