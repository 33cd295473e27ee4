output "url" {
  description = "HTTPS URL of the load balancer."
  value       = module.ferrymq.url
}

output "dns_name" {
  description = "Point your certificate's DNS name at this."
  value       = module.ferrymq.dns_name
}

output "bucket" {
  description = "S3 bucket."
  value       = module.ferrymq.bucket
}

output "log_group" {
  description = "CloudWatch log group."
  value       = module.ferrymq.log_group
}

output "athena_table" {
  description = "Athena table over the archive (database.table)."
  value       = module.ferrymq.athena_table
}

output "athena_workgroup" {
  description = "Athena workgroup to run archive queries in."
  value       = module.ferrymq.athena_workgroup
}

output "jwt_secret_arn" {
  description = "Secrets Manager secret with the JWT secret."
  value       = module.ferrymq.jwt_secret_arn
}
