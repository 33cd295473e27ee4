output "url" {
  description = "In-cluster URL of the gateways."
  value       = module.ferrymq.url
}

output "namespace" {
  description = "Namespace of the gateways."
  value       = module.ferrymq.namespace
}

output "service_name" {
  description = "Service to port-forward to."
  value       = module.ferrymq.service_name
}

output "bucket" {
  description = "MinIO bucket."
  value       = module.ferrymq.bucket
}

output "secrets_name" {
  description = "Kubernetes Secret with jwt-secret and cluster-secret."
  value       = module.ferrymq.secrets_name
}
