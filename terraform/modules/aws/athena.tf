# A Glue Data Catalog table over the Parquet archive, with partition projection so Athena sees
# new partitions at once (no crawler, no MSCK REPAIR). The archive layout, written by
# `ferrymq compact`, is <prefix>/archive/topic=<t>/date=<YYYY-MM-DD>/hour=<HH>/<id>.parquet.

resource "aws_glue_catalog_database" "this" {
  name        = replace("${var.name}_archive", "-", "_")
  description = "FerryMQ message archive (${local.archive_url})"
}

locals {
  topic_projection = length(var.archive_topics) == 0 ? {
    "projection.topic.type" = "injected"
    } : {
    "projection.topic.type"   = "enum"
    "projection.topic.values" = join(",", var.archive_topics)
  }
}

resource "aws_glue_catalog_table" "archive" {
  name          = "messages"
  database_name = aws_glue_catalog_database.this.name
  description   = "FerryMQ archived messages, one row per message"
  table_type    = "EXTERNAL_TABLE"

  parameters = merge({
    "EXTERNAL"                      = "TRUE"
    "classification"                = "parquet"
    "parquet.compression"           = "SNAPPY"
    "projection.enabled"            = "true"
    "projection.date.type"          = "date"
    "projection.date.format"        = "yyyy-MM-dd"
    "projection.date.range"         = "${var.archive_projection_start_date},NOW"
    "projection.date.interval"      = "1"
    "projection.date.interval.unit" = "DAYS"
    "projection.hour.type"          = "integer"
    "projection.hour.range"         = "0,23"
    "projection.hour.digits"        = "2"
    "storage.location.template"     = "${local.archive_url}topic=$${topic}/date=$${date}/hour=$${hour}"
    "has_encrypted_data"            = "true"
  }, local.topic_projection)

  # `topic` is a partition key; Athena refuses a data column of the same name, so the Parquet
  # column `topic` (always equal to the partition value) is not declared below.
  partition_keys {
    name = "topic"
    type = "string"
  }

  partition_keys {
    name    = "date"
    type    = "string"
    comment = "UTC publish date, YYYY-MM-DD"
  }

  partition_keys {
    name    = "hour"
    type    = "string"
    comment = "UTC publish hour, 00-23"
  }

  storage_descriptor {
    location      = local.archive_url
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      name                  = "parquet"
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters = {
        "serialization.format" = "1"
      }
    }

    columns {
      name = "queue"
      type = "int"
    }
    columns {
      name = "offset"
      type = "bigint"
    }
    columns {
      name = "message_id"
      type = "string"
    }
    columns {
      name = "tag"
      type = "string"
    }
    columns {
      name = "keys"
      type = "array<string>"
    }
    columns {
      name = "properties"
      type = "map<string,string>"
    }
    columns {
      name = "body"
      type = "binary"
    }
    columns {
      name = "publish_time"
      type = "timestamp"
    }
    columns {
      name = "deliver_time"
      type = "timestamp"
    }
    columns {
      name = "producer_group"
      type = "string"
    }
    columns {
      name = "message_group"
      type = "string"
    }
  }
}

resource "aws_athena_workgroup" "this" {
  count = var.create_athena_workgroup ? 1 : 0

  name          = var.name
  description   = "Queries over the FerryMQ archive"
  force_destroy = var.force_destroy
  tags          = local.tags

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true

    result_configuration {
      output_location = "s3://${aws_s3_bucket.this.bucket}/athena-results/"

      encryption_configuration {
        encryption_option = var.kms_key_arn == null ? "SSE_S3" : "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
}
