"""`kcli init`: starter configs from templates (configs) and a config for the user's own CSV or image folder (data)."""
