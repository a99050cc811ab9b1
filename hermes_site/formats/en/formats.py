"""One date format throughout the admin: ISO 8601 dates and 24-hour times, in UTC (TIME_ZONE).

Django's English locale would show "Jan. 5, 2026, 3:04 p.m."; a locale's format module wins over
the DATE_FORMAT settings, so the project's own module (FORMAT_MODULE_PATH) sets them.
"""

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i:s"
TIME_FORMAT = "H:i:s"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
MONTH_DAY_FORMAT = "m-d"
YEAR_MONTH_FORMAT = "Y-m"
FIRST_DAY_OF_WEEK = 1  # Monday, as the reports' weeks
