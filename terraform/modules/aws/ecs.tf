# Gateways: an ECS Fargate service behind the ALB, scaled on CPU.

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  # null: CloudWatch Logs' default encryption. A CMK here needs a key policy for logs.<region>.amazonaws.com.
  kms_key_id = var.kms_key_arn
  tags       = local.tags
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = local.tags

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

locals {
  # Each gateway must advertise an address the other gateways can reach (sequencer forwarding).
  # On Fargate the task's private IP is known only at run time, so the container asks the ECS
  # task metadata endpoint (v4) for it and then execs `ferrymq serve`.
  gateway_start = <<-EOT
    set -eu
    ip="$(curl -fsS --retry 5 --retry-connrefused --max-time 2 "$ECS_CONTAINER_METADATA_URI_V4" | sed -n 's/.*"IPv4Addresses":\["\([^"]*\)".*/\1/p')"
    if [ -z "$ip" ]; then
      echo "ferrymq: could not read this task's IPv4 address from the ECS task metadata endpoint" >&2
      exit 1
    fi
    export FERRYMQ_ADVERTISE_ADDR="$ip:${var.container_port}"
    exec ferrymq serve
  EOT

  tmp_volume = "tmp"
}

resource "aws_ecs_task_definition" "gateway" {
  family                   = "${var.name}-gateway"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn
  tags                     = local.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = local.tmp_volume
  }

  container_definitions = jsonencode([
    {
      name       = "gateway"
      image      = var.image
      essential  = true
      entryPoint = ["/bin/sh", "-c"]
      command    = [local.gateway_start]

      portMappings = [
        { containerPort = var.container_port, protocol = "tcp" },
      ]

      environment = concat(local.common_environment, [
        { name = "FERRYMQ_LISTEN", value = "0.0.0.0:${var.container_port}" },
      ])
      secrets = local.secrets

      readonlyRootFilesystem = true
      privileged             = false
      user                   = "10001:10001"
      mountPoints = [
        { sourceVolume = local.tmp_volume, containerPath = "/tmp", readOnly = false },
      ]
      linuxParameters = {
        initProcessEnabled = true
        capabilities       = { drop = ["ALL"] }
      }
      ulimits = [
        { name = "nofile", softLimit = 65536, hardLimit = 65536 },
      ]
      # Long-polls last up to 30 s; give in-flight requests time to finish on SIGTERM.
      stopTimeout = 40

      healthCheck = {
        command     = ["CMD-SHELL", "curl -fsS -o /dev/null http://127.0.0.1:${var.container_port}/readyz || exit 1"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 60
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.this.name
          "awslogs-region"        = local.region
          "awslogs-stream-prefix" = "gateway"
        }
      }
    },
  ])
}

resource "aws_ecs_service" "gateway" {
  name                               = "${var.name}-gateway"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.gateway.arn
  desired_count                      = var.min_tasks
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"
  wait_for_steady_state              = false
  tags                               = local.tags

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway.arn
    container_name   = "gateway"
    container_port   = var.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # The autoscaler owns the desired count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https, aws_iam_role_policy.task]
}

resource "aws_appautoscaling_target" "gateway" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.gateway.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_tasks
  max_capacity       = var.max_tasks

  lifecycle {
    precondition {
      condition     = var.min_tasks <= var.max_tasks
      error_message = "min_tasks must not exceed max_tasks."
    }
  }
}

resource "aws_appautoscaling_policy" "gateway_cpu" {
  name               = "${var.name}-gateway-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  resource_id        = aws_appautoscaling_target.gateway.resource_id
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
