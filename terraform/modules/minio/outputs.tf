output "url" {
  description = "In-cluster URL of the gateways' Service."
  value       = "http://${kubernetes_service_v1.gateway.metadata[0].name}.${local.namespace}.svc:${var.container_port}"
}

output "bucket" {
  description = "Name of the MinIO bucket."
  value       = minio_s3_bucket.this.bucket
}

output "store_url" {
  description = "The FERRYMQ_STORE value the gateways use (s3://bucket/prefix)."
  value       = local.store_url
}

output "namespace" {
  description = "Kubernetes namespace of the gateways and the compactor."
  value       = local.namespace
}

output "service_name" {
  description = "Name of the gateways' Kubernetes Service."
  value       = kubernetes_service_v1.gateway.metadata[0].name
}

output "minio_user" {
  description = "MinIO user (access key) the gateways use."
  value       = minio_iam_user.gateway.id
}

output "secrets_name" {
  description = "Kubernetes Secret holding jwt-secret and cluster-secret (read it to mint tokens with `ferrymq token`)."
  value       = kubernetes_secret_v1.ferrymq.metadata[0].name
}

output "s3_environment" {
  description = "The AWS_* variables (other than the keys) the pods get: endpoint, path-style, plain HTTP, region."
  value       = local.s3_environment
}
