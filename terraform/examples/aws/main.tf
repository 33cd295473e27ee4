# Example: FerryMQ on AWS with an existing VPC. See README.md.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.5"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project = "ferrymq"
    }
  }
}

module "ferrymq" {
  source = "../../modules/aws"

  name               = var.name
  bucket_name        = var.bucket_name
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
  certificate_arn    = var.certificate_arn
  image              = var.image

  min_tasks = 2
  max_tasks = 6

  # Keep Parquet archive files for a year.
  archive_expiration_days = 365
}
