"""Synthetic customer profiles with realistic messy identifiers, for the demo and bench."""

from __future__ import annotations

from pathlib import Path

import duckdb


def write_profiles(path: Path, count: int, *, churn_from: int = 0) -> Path:
    """Write ``count`` profiles as Parquet (or CSV by extension) and return the path.

    Emails are mixed-case and sometimes padded; phones come in many formats, some without
    a country code and some invalid; a few values are empty. ``churn_from`` shifts the
    id range so a second file overlaps the first except for ``churn_from`` profiles.
    """
    fmt = "(FORMAT csv, HEADER)" if path.suffix == ".csv" else "(FORMAT parquet)"
    con = duckdb.connect()
    try:
        con.execute(
            f"""
            COPY (
              SELECT
                'c' || lpad(i::VARCHAR, 9, '0') AS customer_id,
                CASE
                  WHEN i % 97 = 0 THEN NULL
                  WHEN i % 89 = 0 THEN 'not-an-email-' || i
                  WHEN i % 3 = 0 THEN '  User' || i || '@Example.COM '
                  WHEN i % 3 = 1 THEN 'user' || i || '@example.com'
                  ELSE 'First.Last+' || i || '@Mail.example.org'
                END AS email,
                CASE
                  WHEN i % 7 = 0 THEN NULL
                  WHEN i % 5 = 0 THEN '+1 (415) ' || lpad((i % 1000)::VARCHAR, 3, '0')
                       || '-' || lpad((i % 10000)::VARCHAR, 4, '0')
                  WHEN i % 5 = 1 THEN '0044 7700 ' || lpad((i % 1000000)::VARCHAR, 6, '0')
                  WHEN i % 5 = 2 THEN '+33.6.' || lpad((i % 100000000)::VARCHAR, 8, '0')
                  WHEN i % 5 = 3 THEN '07700 9' || lpad((i % 100000)::VARCHAR, 5, '0')
                  ELSE '12'
                END AS phone,
                CASE WHEN i % 4 = 0 THEN upper(
                  substr(md5(i::VARCHAR), 1, 8) || '-' || substr(md5(i::VARCHAR), 9, 4) || '-'
                  || substr(md5(i::VARCHAR), 13, 4) || '-' || substr(md5(i::VARCHAR), 17, 4)
                  || '-' || substr(md5(i::VARCHAR), 21, 12)
                ) ELSE NULL END AS mobile_ad_id,
                18 + (i * 7919) % 70 AS age,
                ['US', 'GB', 'FR', 'DE', 'ES'][1 + (i % 5)] AS country,
                DATE '2026-11-28' - ((i * 31) % 400)::INTEGER AS last_order_date,
                (i * 13) % 9 AS orders_90d,
                round(((i * 7) % 50000) / 100.0, 2) AS lifetime_value,
                (i % 11 = 0) AS churn_risk
              FROM range({churn_from}, {churn_from} + {count}) AS t(i)
            ) TO '{path}' {fmt}
            """
        )
    finally:
        con.close()
    return path
