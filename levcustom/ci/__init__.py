"""Running levcustom in CI: plans for pull requests, checks for the default branch, apply on merge."""
