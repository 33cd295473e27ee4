variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Name prefix for the resources."
  type        = string
  default     = "ferrymq"
}

variable "bucket_name" {
  description = "Globally unique name of the S3 bucket to create."
  type        = string
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "public_subnet_ids" {
  description = "At least two public subnets (different AZs) for the load balancer."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Private subnets with a NAT gateway or VPC endpoints, for the tasks."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener."
  type        = string
}

variable "image" {
  description = "FerryMQ image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ferrymq@sha256:..."
  type        = string
}
