terraform {
  # Write-only arguments (secret_string_wo) and ephemeral variables need Terraform 1.11.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # secret_string_wo on aws_secretsmanager_secret_version arrived in the 5.x line.
      version = ">= 5.100, < 7.0"
    }
  }
}
