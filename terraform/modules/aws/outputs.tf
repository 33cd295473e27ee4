output "url" {
  description = "HTTPS URL of the load balancer. Point a DNS name covered by the certificate at it (see dns_name) and use https://<that name>."
  value       = "https://${aws_lb.this.dns_name}"
}

output "dns_name" {
  description = "DNS name of the load balancer, for a CNAME or alias record."
  value       = aws_lb.this.dns_name
}

output "zone_id" {
  description = "Route 53 zone ID of the load balancer, for an alias record."
  value       = aws_lb.this.zone_id
}

output "bucket" {
  description = "Name of the S3 bucket."
  value       = aws_s3_bucket.this.bucket
}

output "store_url" {
  description = "The FERRYMQ_STORE value the gateways use (s3://bucket/prefix)."
  value       = local.store_url
}

output "log_group" {
  description = "CloudWatch log group of the gateways (stream prefix gateway/) and the compactor (compactor/)."
  value       = aws_cloudwatch_log_group.this.name
}

output "athena_table" {
  description = "Glue/Athena table over the Parquet archive, as database.table."
  value       = "${aws_glue_catalog_database.this.name}.${aws_glue_catalog_table.archive.name}"
}

output "athena_workgroup" {
  description = "Athena workgroup for archive queries (null when create_athena_workgroup = false)."
  value       = var.create_athena_workgroup ? aws_athena_workgroup.this[0].name : null
}

output "jwt_secret_arn" {
  description = "Secrets Manager secret holding the HS256 JWT secret; `ferrymq token` mints tokens from it."
  value       = local.jwt_secret_arn
}

output "cluster_secret_arn" {
  description = "Secrets Manager secret holding the cluster secret."
  value       = local.cluster_secret_arn
}

output "ecs_cluster" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service" {
  description = "Name of the gateways' ECS service."
  value       = aws_ecs_service.gateway.name
}

output "task_role_arn" {
  description = "IAM role of the gateway and compactor tasks."
  value       = aws_iam_role.task.arn
}

output "tasks_security_group_id" {
  description = "Security group of the tasks (gateways reach each other through it)."
  value       = aws_security_group.tasks.id
}
