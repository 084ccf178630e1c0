#!/usr/bin/env python3
"""Parses irflow's real calendar files with an external iCalendar implementation
(Python `icalendar`) and checks what a calendar application would show.

Starts the demo department, books a ready case after the March 2027 daylight-saving
change, downloads its `.ics` (staff API), moves it past the November 2027 change,
downloads it again, then cancels it; also the patient's own download through a
patient link. For each file: it parses, has one VEVENT whose DTSTART/DTEND are the
booked instants with the right UTC offset (EDT -04:00, then EST -05:00) both through
icalendar's own time-zone handling and through the file's VTIMEZONE alone, a
DESCRIPTION with the arrival time and the phone number, a display VALARM, a stable
UID and a growing SEQUENCE. Exits non-zero on any failure.
"""
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import http.cookiejar

import icalendar

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/irflow"
PHONE = "617-726-6773"
passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def call(base, token, method, path, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def call_json(base, token, method, path, body=None):
    status, _, raw = call(base, token, method, path, body)
    return status, json.loads(raw)


def token(data_dir, user):
    out = subprocess.run(
        [BIN, "token", "issue", "--user", user, "--data-dir", data_dir],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def parse(name, raw):
    """Parses a file; returns (calendar, the one VEVENT) or (None, None)."""
    try:
        cal = icalendar.Calendar.from_ical(raw)
    except Exception as e:  # noqa: BLE001 - any parse failure is a failure
        check(f"{name}: icalendar parses it", False, str(e))
        return None, None
    check(f"{name}: icalendar parses it", True)
    events = [c for c in cal.walk() if c.name == "VEVENT"]
    check(f"{name}: exactly one VEVENT", len(events) == 1, str(len(events)))
    return cal, events[0] if events else None


def vtimezone_offset(cal, local):
    """The UTC offset the file's own VTIMEZONE gives at a naive local time: the
    observance with the latest onset at or before it (no zoneinfo involved)."""
    best = None
    for tz in cal.walk("VTIMEZONE"):
        for obs in tz.subcomponents:
            onset = obs.decoded("DTSTART")
            if onset.tzinfo is not None:
                onset = onset.replace(tzinfo=None)
            if onset <= local and (best is None or onset > best[0]):
                best = (onset, obs.decoded("TZOFFSETTO"))
    return best[1] if best else None


def check_event(name, cal, event, appointment, expect_offset_hours, cancelled=False):
    start = datetime.datetime.fromisoformat(appointment["start"])
    end = datetime.datetime.fromisoformat(appointment["end"])
    arrive = datetime.datetime.fromisoformat(appointment["arrive_by"])
    check(f"{name}: METHOD is PUBLISH", str(cal.get("METHOD")) == "PUBLISH")
    check(f"{name}: VERSION is 2.0", str(cal.get("VERSION")) == "2.0")
    check(f"{name}: PRODID names irflow", "irflow" in str(cal.get("PRODID")))
    dtstart = event.decoded("DTSTART")
    dtend = event.decoded("DTEND")
    check(f"{name}: DTSTART is zone-aware", dtstart.tzinfo is not None, repr(dtstart))
    check(f"{name}: DTSTART is the booked instant", dtstart == start, f"{dtstart} != {start}")
    check(f"{name}: DTEND is the booked end", dtend == end, f"{dtend} != {end}")
    offset = dtstart.utcoffset()
    check(f"{name}: UTC offset {expect_offset_hours:+d}:00",
          offset == datetime.timedelta(hours=expect_offset_hours), str(offset))
    check(f"{name}: DTSTART names the site's zone",
          event["DTSTART"].params.get("TZID") == "America/New_York", str(event["DTSTART"].params))
    own = vtimezone_offset(cal, dtstart.replace(tzinfo=None))
    check(f"{name}: the file's VTIMEZONE alone gives {expect_offset_hours:+d}:00",
          own == datetime.timedelta(hours=expect_offset_hours), str(own))
    description = str(event.get("DESCRIPTION"))
    arrive_clock = arrive.strftime("%I:%M %p").lstrip("0")
    check(f"{name}: DESCRIPTION has the arrival time {arrive_clock}", arrive_clock in description, description)
    check(f"{name}: DESCRIPTION has the phone number", PHONE in description, description)
    check(f"{name}: DESCRIPTION keeps its commas and line breaks",
          "Questions, or" in description and "\n" in description, repr(description))
    check(f"{name}: LOCATION names the department", "Spine Injection Service" in str(event.get("LOCATION")))
    check(f"{name}: SUMMARY is set", bool(str(event.get("SUMMARY", "")).strip()))
    check(f"{name}: DTSTAMP is UTC", event.decoded("DTSTAMP").utcoffset() == datetime.timedelta(0))
    status = str(event.get("STATUS"))
    alarms = [c for c in event.subcomponents if c.name == "VALARM"]
    if cancelled:
        check(f"{name}: STATUS is CANCELLED", status == "CANCELLED", status)
        check(f"{name}: no reminder for a cancelled appointment", not alarms)
    else:
        check(f"{name}: STATUS is CONFIRMED", status == "CONFIRMED", status)
        check(f"{name}: one VALARM", len(alarms) == 1, str(len(alarms)))
        if alarms:
            alarm = alarms[0]
            check(f"{name}: VALARM is a DISPLAY", str(alarm.get("ACTION")) == "DISPLAY")
            trigger = alarm.decoded("TRIGGER")
            check(f"{name}: VALARM the day before", trigger == datetime.timedelta(days=-1), str(trigger))
            check(f"{name}: VALARM says something", bool(str(alarm.get("DESCRIPTION", "")).strip()))
    return str(event.get("UID")), int(event.get("SEQUENCE"))


def book(base, sched, case, day, move=False):
    status, slots = call_json(base, sched, "GET", f"/api/v1/cases/{case}/slots?from={day}&limit=1")
    if status != 200 or not slots.get("slots"):
        return None
    slot = slots["slots"][0]
    body = {"start": slot["start"], "room": slot["room"]["id"], "radiologist": slot["radiologist"]["id"]}
    if move:
        body["reason"] = "validate_ics: across the daylight-saving change"
    status, appointment = call_json(base, sched, "PUT" if move else "POST",
                                    f"/api/v1/cases/{case}/appointment", body)
    return appointment if status in (200, 201) else None


def ics(base, sched, case, name):
    status, headers, raw = call(base, sched, "GET", f"/api/v1/cases/{case}/appointment.ics")
    check(f"{name}: answers 200 text/calendar",
          status == 200 and headers.get("Content-Type", "").startswith("text/calendar"),
          f"{status} {headers.get('Content-Type')}")
    lines = raw.split(b"\r\n")
    check(f"{name}: lines at most 75 octets", all(len(l) <= 75 for l in lines),
          str(max(len(l) for l in lines)))
    check(f"{name}: CRLF line ends", b"\n" not in raw.replace(b"\r\n", b""))
    return raw


def patient_download(base, sched, case, dob, appointment):
    """The patient's own calendar file, through a patient link and the date of birth."""
    status, made = call_json(base, sched, "POST", f"/api/v1/cases/{case}/patient-link", {"channel": "none"})
    check("patient link created", status == 201, f"{status} {made}")
    if status != 201:
        return
    url = made["url"]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(url) as r:
        page = r.read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    year, month, day = dob.split("-")
    form = urllib.parse.urlencode({"csrf": csrf, "lang": "en", "month": int(month), "day": int(day), "year": year})
    origin = base.rstrip("/")
    req = urllib.request.Request(url, data=form.encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": origin})
    with opener.open(req) as r:
        check("patient passes the date-of-birth check", r.status == 200 and "patient-appointment" in r.read().decode())
    with opener.open(url + "/appointment.ics") as r:
        raw = r.read()
    cal, event = parse("patient's own .ics", raw)
    if event is not None:
        check_event("patient's own .ics", cal, event, appointment, -4)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "demo")
        env = dict(os.environ, IRFLOW_LOG_LEVEL="warn")
        demo = subprocess.Popen([BIN, "demo", "--port", "0", "--data-dir", data_dir],
                                stdout=subprocess.PIPE, text=True, env=env)
        try:
            url = None
            for line in demo.stdout:
                if "http://" in line:
                    url = line[line.index("http://"):].split()[0]
                    break
            if url is None:
                check("demo started", False)
                return
            sched = token(data_dir, "scheduler")
            status, ready = call_json(url, sched, "GET", "/api/v1/cases?state=ready")
            check("ready cases listed", status == 200, str(status))
            case, appointment = None, None
            for c in ready.get("cases", []):
                appointment = book(url, sched, c["id"], "2027-03-16")
                if appointment:
                    case = c
                    break
            check("a ready case booked after the March 2027 change", appointment is not None)
            if appointment is None:
                return
            cid = case["id"]
            check("booked on EDT", appointment["start"].endswith("-04:00"), appointment["start"])
            cal, event = parse("spring .ics", ics(url, sched, cid, "spring .ics"))
            if event is None:
                return
            uid, seq = check_event("spring .ics", cal, event, appointment, -4)
            patient_download(url, sched, cid, case["patient"]["date_of_birth"], appointment)

            moved = book(url, sched, cid, "2027-11-09", move=True)
            check("moved past the November 2027 change", moved is not None)
            if moved is None:
                return
            check("moved onto EST", moved["start"].endswith("-05:00"), moved["start"])
            cal, event = parse("autumn .ics", ics(url, sched, cid, "autumn .ics"))
            if event is None:
                return
            uid2, seq2 = check_event("autumn .ics", cal, event, moved, -5)
            check("the same event (UID) after the move", uid2 == uid, f"{uid2} != {uid}")
            check("SEQUENCE grows with the move", seq2 > seq, f"{seq2} <= {seq}")

            status, _ = call_json(url, sched, "DELETE", f"/api/v1/cases/{cid}/appointment",
                                  {"reason": "validate_ics: cancelled"})
            check("cancelled", status == 200, str(status))
            cal, event = parse("cancelled .ics", ics(url, sched, cid, "cancelled .ics"))
            if event is not None:
                uid3, seq3 = check_event("cancelled .ics", cal, event, moved, -5, cancelled=True)
                check("the same event (UID) when cancelled", uid3 == uid)
                check("SEQUENCE grows with the cancellation", seq3 > seq2, f"{seq3} <= {seq2}")

            status, _, raw = call(url, sched, "GET", "/api/v1/cases/999999/appointment.ics")
            check("an unknown case answers 404", status == 404, str(status))
        finally:
            demo.terminate()
            demo.wait(timeout=30)

    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
