"""The command line: argv → Hydra, the up-front check, help, sweeps. Imports no torch: ``ftcli --help`` stays fast."""
