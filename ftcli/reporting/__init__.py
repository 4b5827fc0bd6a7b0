"""What a run tells people: progress on the terminal, the metrics log and trackers, reports and plots, model cards."""
