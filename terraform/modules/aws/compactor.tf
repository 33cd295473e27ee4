# The compactor: `ferrymq compact` as a one-shot Fargate task started on a schedule by
# EventBridge Scheduler. A pass archives everything committed before it began and is safe beside
# running gateways; a pass still running when the next one starts only makes the next one short.

resource "aws_ecs_task_definition" "compactor" {
  family                   = "${var.name}-compactor"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.compactor_cpu
  memory                   = var.compactor_memory
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
      name      = "compactor"
      image     = var.image
      essential = true
      # The image's entrypoint is `ferrymq`; FERRYMQ_STORE names the store.
      command = ["compact"]

      environment = local.common_environment
      # The compactor records archived files in the manifest; it gets the cluster secret (for
      # calls to the sequencer) but not the JWT secret, which only signs client tokens.
      secrets = [for s in local.secrets : s if s.name == "FERRYMQ_CLUSTER_SECRET"]

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

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.this.name
          "awslogs-region"        = local.region
          "awslogs-stream-prefix" = "compactor"
        }
      }
    },
  ])
}

resource "aws_scheduler_schedule" "compactor" {
  name                         = "${var.name}-compactor"
  description                  = "Runs `ferrymq compact` against ${local.store_url}"
  schedule_expression          = var.compactor_schedule
  schedule_expression_timezone = "UTC"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.this.arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.compactor.arn
      launch_type         = "FARGATE"
      platform_version    = "LATEST"
      task_count          = 1
      propagate_tags      = "TASK_DEFINITION"

      network_configuration {
        subnets          = var.private_subnet_ids
        security_groups  = [aws_security_group.tasks.id]
        assign_public_ip = false
      }
    }

    # The next scheduled pass picks up whatever a failed one left.
    retry_policy {
      maximum_retry_attempts = 0
    }
  }
}
