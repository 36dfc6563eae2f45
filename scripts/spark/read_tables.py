"""Reads pixlake's Delta tables with Apache Spark + delta-spark and checks what analysts rely on.

    python read_tables.py WAREHOUSE_DIR [EXPECTED_TOTAL_ROWS]

Prints each table's schema and row count; exits non-zero if a table cannot be read, a column has
an unexpected Spark type, or the rows do not add up to EXPECTED_TOTAL_ROWS.

WAREHOUSE_DIR may be an s3a:// URL: Spark then reads through Hadoop's S3A connector
(hadoop-aws, from Maven Central) with the store and credentials of PIXLAKE_SPARK_S3_ENDPOINT,
PIXLAKE_SPARK_S3_ACCESS_KEY and PIXLAKE_SPARK_S3_SECRET_KEY (path-style requests).
"""
import os
import sys

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession

warehouse = sys.argv[1]
expected = int(sys.argv[2]) if len(sys.argv) > 2 else None

builder = (
    SparkSession.builder.appName("pixlake-interop")
    .master("local[2]")
    .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    .config("spark.sql.session.timeZone", "UTC")
    .config("spark.ui.enabled", "false")
)
extra_packages = []
if warehouse.startswith("s3a://"):
    # hadoop-aws matching PySpark 3.5's Hadoop (3.3.4); it brings the AWS SDK bundle.
    extra_packages = ["org.apache.hadoop:hadoop-aws:3.3.4"]
    endpoint = os.environ["PIXLAKE_SPARK_S3_ENDPOINT"]
    builder = (
        builder.config("spark.hadoop.fs.s3a.endpoint", endpoint)
        .config("spark.hadoop.fs.s3a.path.style.access", "true")
        .config("spark.hadoop.fs.s3a.connection.ssl.enabled", str(endpoint.startswith("https")).lower())
        .config("spark.hadoop.fs.s3a.aws.credentials.provider",
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider")
        .config("spark.hadoop.fs.s3a.access.key", os.environ["PIXLAKE_SPARK_S3_ACCESS_KEY"])
        .config("spark.hadoop.fs.s3a.secret.key", os.environ["PIXLAKE_SPARK_S3_SECRET_KEY"])
    )
spark = configure_spark_with_delta_pip(builder, extra_packages=extra_packages).getOrCreate()
spark.sparkContext.setLogLevel("ERROR")

EXPECTED_TYPES = {
    "pix_payments": {"amount": "decimal(18,2)", "event_time": "timestamp", "event_date": "date",
                     "quality_flags": "array<string>", "kafka_offset": "bigint", "payer_document": "string"},
    "pix_receipts": {"amount": "decimal(18,2)", "received_at": "timestamp", "event_date": "date"},
    "pix_refunds": {"amount": "decimal(18,2)", "requested_at": "timestamp", "settled_at": "timestamp"},
    "pix_quarantine": {"raw_value": "binary", "error_rule": "string", "ingest_date": "date"},
}

total = 0
failed = False
for table, types in EXPECTED_TYPES.items():
    df = spark.read.format("delta").load(f"{warehouse}/{table}")
    actual = dict(df.dtypes)
    for column, t in types.items():
        if actual.get(column) != t:
            print(f"FAIL {table}.{column}: Spark sees {actual.get(column)}, expected {t}")
            failed = True
    n = df.count()
    total += n
    print(f"{table}: {n} rows, {len(actual)} columns")
    if table == "pix_payments":
        spark.sql(f"SELECT event_date, count(*) AS n, sum(amount) AS reais FROM delta.`{warehouse}/{table}` GROUP BY event_date").show()
    if table == "pix_quarantine":
        spark.sql(f"SELECT error_rule, count(*) AS n FROM delta.`{warehouse}/{table}` GROUP BY error_rule ORDER BY n DESC").show(5)

if expected is not None and total != expected:
    print(f"FAIL: {total} rows in all tables, expected {expected}")
    failed = True
print(f"total rows: {total}")
spark.stop()
sys.exit(1 if failed else 0)
