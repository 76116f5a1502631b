"""The marketplace backend's surface: request schemas, order files, the HTTP admin API."""
