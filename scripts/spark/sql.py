"""Runs Spark SQL over pixlake's Delta tables, each registered as a view named after its table.

    python sql.py WAREHOUSE_DIR "SELECT ..." ["SELECT ..." ...]
"""
import os
import sys

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession

warehouse = os.path.abspath(sys.argv[1])
builder = (
    SparkSession.builder.appName("pixlake-sql")
    .master("local[2]")
    .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    .config("spark.sql.session.timeZone", "America/Sao_Paulo")
    .config("spark.ui.enabled", "false")
)
spark = configure_spark_with_delta_pip(builder).getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
for name in sorted(os.listdir(warehouse)):
    if os.path.isdir(os.path.join(warehouse, name, "_delta_log")):
        spark.read.format("delta").load(os.path.join(warehouse, name)).createOrReplaceTempView(name)
for query in sys.argv[2:]:
    print(f"> {query}")
    spark.sql(query).show(50, truncate=False)
spark.stop()
