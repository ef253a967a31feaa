terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }

  # Local state: this stack makes the bucket every other stack keeps its state in.
  # scripts/bootstrap_state.py gives the path (-backend-config=path=...).
  backend "local" {}
}

provider "aws" {
  region              = var.region
  allowed_account_ids = var.account_id == null ? null : [var.account_id]

  default_tags {
    tags = {
      Project   = var.project_name
      ManagedBy = "terraform"
      Purpose   = "terraform-state"
    }
  }
}
