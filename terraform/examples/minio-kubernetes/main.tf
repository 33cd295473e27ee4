# Example: FerryMQ gateways on Kubernetes, storing in an existing MinIO. See README.md.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    minio = {
      source  = "aminueza/minio"
      version = "~> 3.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.23"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.5"
    }
  }
}

# Terraform's own connection to MinIO's API (to create the bucket, user and policy); it may
# differ from the in-cluster endpoint the pods use (s3_endpoint).
provider "minio" {
  minio_server   = var.minio_server
  minio_user     = var.minio_user
  minio_password = var.minio_password
  minio_ssl      = var.minio_ssl
}

provider "kubernetes" {
  config_path    = var.kubeconfig
  config_context = var.kube_context
}

module "ferrymq" {
  source = "../../modules/minio"

  name        = "ferrymq"
  namespace   = var.namespace
  bucket_name = var.bucket_name
  s3_endpoint = var.s3_endpoint
  image       = var.image

  min_replicas = 2
  max_replicas = 4
}
