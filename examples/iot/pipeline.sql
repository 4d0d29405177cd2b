-- Runnel IoT demo: sensor readings -> bronze / quarantine / silver / gold.
--
-- 200 sensors in 5 regions report temperature (°F), humidity and a status
-- every 10 seconds of event time, for about 5.5 hours. Some readings are
-- bad on purpose: missing device ids, 9999 °F, malformed records, readings
-- that arrive 10 minutes late, and devices that go silent for an hour.
-- Run from the repository root: scripts/demo.sh (or `runnel run
-- examples/iot/pipeline.sql`). Output goes to target/iot-demo/: the
-- quarantine, silver and gold tables are Delta Lake tables (readable by
-- Spark, DuckDB's delta extension or the deltalake package), the sliding
-- windows and sessions are CSV and JSON files.

SET 'parallelism' = '2';

-- Bronze: readings as the devices send them (the `raw` column is the JSON
-- document; the typed columns are what a JSON decoder made of it).
CREATE TABLE sensor_readings (
  event_time  TIMESTAMP(3),
  device_id   STRING,
  temperature DOUBLE,
  humidity    DOUBLE,
  status      STRING,
  raw         STRING,
  proc_time AS PROCTIME(),
  WATERMARK FOR event_time AS event_time - INTERVAL '30' SECOND
) WITH (
  'connector' = 'datagen',
  'seed' = '7',
  'number-of-rows' = '400000',
  'iot.devices' = '200',
  'iot.interval-ms' = '10000',
  'iot.missing-device-rate' = '0.01',
  'iot.bad-temperature-rate' = '0.005',
  'iot.malformed-rate' = '0.005',
  'iot.late-rate' = '0.01',
  'iot.late-ms' = '600000',
  'iot.outage-rate' = '0.05'
);

-- Device metadata and fleet size per region, read once from CSV files.
CREATE TABLE devices (device_id STRING, region STRING, site STRING) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/iot/devices.csv',
  'format' = 'csv',
  'csv.ignore-first-line' = 'true'
);

CREATE TABLE region_fleet (region STRING, devices INT) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/iot/regions.csv',
  'format' = 'csv',
  'csv.ignore-first-line' = 'true'
);

-- Device ids and raw documents are personal data.
ALTER TABLE sensor_readings ALTER COLUMN device_id SET TAGS ('pii' = 'true');
ALTER TABLE sensor_readings ALTER COLUMN raw SET TAGS ('pii' = 'true');
ALTER TABLE sensor_readings SET TAGS ('layer' = 'bronze');

-- Quarantine: every invalid reading, with the expectations it failed and
-- when, in a Delta table.
CREATE TABLE quarantine (
  event_time     TIMESTAMP(3),
  device_id      STRING,
  temperature    DOUBLE,
  humidity       DOUBLE,
  status         STRING,
  raw            STRING,
  expectations   STRING,
  quarantined_at TIMESTAMP(3)
) WITH ('connector' = 'delta', 'path' = 'target/iot-demo/quarantine');

-- The readings that pass the data-quality rules; each one that does not
-- goes to the quarantine table instead (counted per rule: with `runnel
-- serve`, in system.expectations).
CREATE VIEW checked_readings (
  CONSTRAINT has_device   EXPECT (device_id IS NOT NULL) ON VIOLATION QUARANTINE INTO quarantine,
  CONSTRAINT parsed       EXPECT (temperature IS NOT NULL) ON VIOLATION QUARANTINE INTO quarantine,
  CONSTRAINT valid_temp   EXPECT (temperature BETWEEN -40 AND 150) ON VIOLATION QUARANTINE INTO quarantine,
  CONSTRAINT known_status EXPECT (status IN ('active', 'idle', 'faulty')) ON VIOLATION QUARANTINE INTO quarantine
) AS
SELECT event_time, device_id, temperature, humidity, status, raw FROM sensor_readings;

-- Silver: valid readings in Celsius, with an alert flag above 90 °F and
-- the device's region and site (devices is looked up per reading).
CREATE VIEW silver AS
SELECT r.event_time,
       r.device_id,
       d.region,
       d.site,
       (r.temperature - 32) * 5 / 9 AS temperature_c,
       r.humidity,
       r.status,
       r.temperature > 90 AS alert
FROM checked_readings AS r
JOIN devices AS d ON r.device_id = d.device_id;

-- The silver readings, stored in a Delta table partitioned by region.
CREATE TABLE silver_readings (
  event_time    TIMESTAMP(3),
  device_id     STRING,
  region        STRING,
  site          STRING,
  temperature_c DOUBLE,
  humidity      DOUBLE,
  status        STRING,
  alert         BOOLEAN
) PARTITIONED BY (region)
WITH ('connector' = 'delta', 'path' = 'target/iot-demo/silver');

-- Gold: hourly aggregates per region, into a Delta table and printed.
CREATE VIEW hourly AS
SELECT region, window_start, window_end,
       COUNT(*) AS readings,
       COUNT(DISTINCT device_id) AS devices,
       ROUND(AVG(temperature_c), 2) AS avg_temp_c,
       ROUND(MAX(temperature_c), 2) AS max_temp_c,
       ROUND(AVG(humidity), 1) AS avg_humidity,
       COUNT(*) FILTER (WHERE alert) AS alerts
FROM TABLE(TUMBLE(TABLE silver, DESCRIPTOR(event_time), INTERVAL '1' HOUR))
GROUP BY region, window_start, window_end;

CREATE TABLE gold_hourly (
  region        STRING,
  window_start  TIMESTAMP(3),
  window_end    TIMESTAMP(3),
  readings      BIGINT,
  devices       BIGINT,
  avg_temp_c    DOUBLE,
  max_temp_c    DOUBLE,
  avg_humidity  DOUBLE,
  alerts        BIGINT
) WITH ('connector' = 'delta', 'path' = 'target/iot-demo/gold_hourly');

CREATE TABLE gold_console (
  region        STRING,
  window_start  TIMESTAMP(3),
  window_end    TIMESTAMP(3),
  readings      BIGINT,
  devices       BIGINT,
  avg_temp_c    DOUBLE,
  max_temp_c    DOUBLE,
  avg_humidity  DOUBLE,
  alerts        BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'gold hourly');

-- A 15-minute view sliding every 5 minutes, per region, as CSV.
CREATE TABLE sliding_15min (
  region       STRING,
  window_start TIMESTAMP(3),
  window_end   TIMESTAMP(3),
  avg_temp_c   DOUBLE,
  readings     BIGINT
) WITH ('connector' = 'filesystem', 'path' = 'target/iot-demo/sliding_15min', 'format' = 'csv');

-- Per-device sessions: a device's readings until it is silent for 5 minutes.
CREATE TABLE device_sessions (
  device_id     STRING,
  session_start TIMESTAMP(3),
  session_end   TIMESTAMP(3),
  readings      BIGINT,
  max_temp_c    DOUBLE
) WITH ('connector' = 'filesystem', 'path' = 'target/iot-demo/device_sessions', 'format' = 'json');

-- Alerts: 15-minute windows in which more than 10% of a region's devices
-- sent no valid reading.
CREATE VIEW reporting AS
SELECT region, window_start, window_end, COUNT(DISTINCT device_id) AS reporting
FROM TABLE(TUMBLE(TABLE silver, DESCRIPTOR(event_time), INTERVAL '15' MINUTE))
GROUP BY region, window_start, window_end;

CREATE TABLE outage_alerts (
  region       STRING,
  window_start TIMESTAMP(3),
  window_end   TIMESTAMP(3),
  reporting    BIGINT,
  fleet        INT,
  silent       BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'outage alert');

-- Analysts may read the gold table, and nothing else.
CREATE ROLE analysts;
GRANT SELECT ON TABLE gold_hourly TO analysts;
SHOW GRANTS ON TABLE gold_hourly;

-- Every table above is written by one job: a statement set runs its
-- INSERTs together, and they share one read of sensor_readings (the
-- quarantine table is written by checked_readings' expectations).
EXECUTE STATEMENT SET
BEGIN
  INSERT INTO silver_readings SELECT * FROM silver;
  INSERT INTO gold_hourly SELECT * FROM hourly;
  INSERT INTO gold_console SELECT * FROM hourly;
  INSERT INTO sliding_15min
  SELECT region, window_start, window_end, AVG(temperature_c), COUNT(*)
  FROM TABLE(HOP(TABLE silver, DESCRIPTOR(event_time), INTERVAL '5' MINUTE, INTERVAL '15' MINUTE))
  GROUP BY region, window_start, window_end;
  INSERT INTO device_sessions
  SELECT device_id, window_start, window_end, COUNT(*), MAX(temperature_c)
  FROM TABLE(SESSION(TABLE silver PARTITION BY device_id, DESCRIPTOR(event_time), INTERVAL '5' MINUTE))
  GROUP BY device_id, window_start, window_end;
  INSERT INTO outage_alerts
  SELECT r.region, r.window_start, r.window_end, r.reporting, f.devices, f.devices - r.reporting
  FROM reporting AS r
  JOIN region_fleet AS f ON r.region = f.region
  WHERE r.reporting < f.devices * 0.9;
END;

-- Where a gold number comes from: the lineage of the hourly average back
-- to the bronze readings (through the silver and checked views).
SHOW LINEAGE gold_hourly.avg_temp_c;
