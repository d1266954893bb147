"""The stacks the GitOps tests render (issue 29's four: default standalone, gateway mode, wide EP
over nodes as LeaderWorkerSets, the helmfile era) and the repository they point the controllers at,
shared by the unit tests (tests/test_gitops.py) and the real-CRD e2e (tests/e2e/test_e2e_gitops.py)."""

REPO = "https://git.example.com/platform/llm-d.git"
STACKS = {
    "default": ("--llmd-version", "v0.9.0"),
    "istio": ("--llmd-version", "v0.9.0", "-e", "istio"),
    "gb200": ("--llmd-version", "v0.9.0", "-e", "gb200"),
    "v0.6.0": ("--llmd-version", "v0.6.0"),
}
