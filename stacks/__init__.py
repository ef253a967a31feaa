"""cdktf stacks: one SecretsStack per environment, built from envs/*.toml."""
