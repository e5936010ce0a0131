#!/usr/bin/env python3
"""Parse an iCalendar feed with an independent library (icalendar, from
PyPI) and print its events as JSON, times converted to the zone given as
the first argument: what the calendar tests compare with what changegate
meant to publish. Reads the feed on stdin."""
import json
import sys
from zoneinfo import ZoneInfo

import icalendar

zone = ZoneInfo(sys.argv[1] if len(sys.argv) > 1 else "UTC")
cal = icalendar.Calendar.from_ical(sys.stdin.read())
events = []
for ev in cal.walk("VEVENT"):
    start = ev.decoded("DTSTART")
    end = ev.decoded("DTEND")
    events.append({
        "uid": str(ev.get("UID")),
        "summary": str(ev.get("SUMMARY")),
        "description": str(ev.get("DESCRIPTION", "")),
        "categories": [str(c) for c in ev.get("CATEGORIES").cats] if ev.get("CATEGORIES") else [],
        "start": start.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
        "end": end.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
        "url": str(ev.get("URL", "")),
    })
print(json.dumps({"name": str(cal.get("NAME", cal.get("X-WR-CALNAME", ""))), "events": events}))
