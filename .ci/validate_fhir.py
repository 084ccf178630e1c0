#!/usr/bin/env python3
"""Validates irflow's real FHIR responses with an external implementation of the
FHIR structure definitions (Python `fhir.resources`, R4B models).

Starts the demo department, drives the FHIR API as a client would (reads, a
search with paging, a create, refused creates; Appointment, Slot, Schedule and
Location reads and searches; an ImagingStudy uploaded from pydicom's test data;
Procedure, MedicationAdministration and DocumentReference searched and read), and
validates every resource
that comes back, OperationOutcomes included. Exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

from fhir.resources.R4B import get_fhir_model_class

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/irflow"
passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def validate(name, resource, expected_type=None):
    try:
        rtype = resource["resourceType"]
        if expected_type and rtype != expected_type:
            raise ValueError(f"expected {expected_type}, got {rtype}")
        get_fhir_model_class(rtype).model_validate(resource)
        check(f"{name}: valid {rtype}", True)
    except Exception as e:  # noqa: BLE001 - report any validation failure
        check(f"{name}: valid FHIR", False, str(e)[:2000])


def call(base, token, method, path, body=None):
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/fhir+json"
    url = path if path.startswith("http") else base + path
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.load(e)


def token(data_dir, user):
    out = subprocess.run(
        [BIN, "token", "issue", "--user", user, "--data-dir", data_dir],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def order(patient_family):
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "priority": "routine",
        "contained": [{
            "resourceType": "Patient", "id": "p1",
            "name": [{"family": patient_family, "given": ["Fhir"]}],
            "birthDate": "1970-07-07",
            "telecom": [{"system": "phone", "value": "617-555-0190"}],
        }],
        "subject": {"reference": "#p1"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64483"}]},
        "bodySite": [
            {"coding": [{"system": "urn:irflow:spine-level", "code": "L4-L5"}]},
            {"coding": [{"system": "http://snomed.info/sct", "code": "7771000"}]},
        ],
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.16"}],
                        "text": "Left L5 radiculopathy"}],
    }


def next_day(day):
    import datetime
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=1)).isoformat()


def scheduling(base, data_dir, referrer, other, scheduler):
    """Appointment, Slot, Schedule and Location, read and searched as clients do."""
    status, _, cap = call(base, None, "GET", "/metadata")
    served = {r["type"] for r in cap["rest"][0]["resource"]}
    check("metadata lists Appointment, Slot, Schedule, Location",
          {"Appointment", "Slot", "Schedule", "Location"} <= served, str(sorted(served)))

    # Appointments: the demo books real ones.
    status, _, bundle = call(base, scheduler, "GET", "/Appointment?_count=100")
    check("Appointment search answers 200", status == 200, f"{status} {bundle}")
    validate("Appointment search", bundle, "Bundle")
    appointments = [e["resource"] for e in bundle.get("entry", [])]
    check("the demo's appointments are served", len(appointments) >= 3, f"found {len(appointments)}")
    seen_refs = set()
    for a in appointments:
        validate(f"Appointment/{a['id']} in bundle", a, "Appointment")
        status, _, read = call(base, scheduler, "GET", f"/Appointment/{a['id']}")
        check(f"read Appointment/{a['id']} answers 200", status == 200, f"{status}")
        validate(f"read Appointment/{a['id']}", read, "Appointment")
        check(f"Appointment/{a['id']} read equals its search entry", read == a)
        for p in a.get("participant", []):
            seen_refs.add(p["actor"]["reference"])
        for s in a.get("slot", []):
            seen_refs.add(s["reference"])
    for ref in sorted(seen_refs):
        rtype = ref.split("/")[0]
        status, _, resource = call(base, scheduler, "GET", "/" + ref)
        check(f"participant/slot {ref} resolves", status == 200, f"{status} {resource}")
        validate(f"read {ref}", resource, rtype)
    if appointments:
        a = appointments[0]
        day = a["start"][:10]
        pid = a["participant"][0]["actor"]["reference"]
        status, _, found = call(base, scheduler, "GET",
                                f"/Appointment?patient={pid}&date=ge{day}&date=lt{next_day(day)}")
        validate("Appointment search by patient and date", found, "Bundle")
        check("search by patient and date finds it",
              any(e["resource"]["id"] == a["id"] for e in found.get("entry", [])), str(found)[:500])
    status, _, booked = call(base, scheduler, "GET", "/Appointment?status=booked&_count=100")
    validate("Appointment search status=booked", booked, "Bundle")
    check("status=booked returns only booked ones",
          all(e["resource"]["status"] == "booked" for e in booked.get("entry", [])))
    status, _, mine = call(base, referrer, "GET", "/Appointment?_count=100")
    validate("referrer's Appointment search", mine, "Bundle")
    mine_ids = {e["resource"]["id"] for e in mine.get("entry", [])}
    check("a referrer sees some but not all appointments",
          0 < len(mine_ids) < len(appointments), f"{len(mine_ids)} of {len(appointments)}")
    if mine_ids:
        theirs = sorted(mine_ids)[0]
        status, _, outcome = call(base, other, "GET", f"/Appointment/{theirs}")
        check("another referrer's appointment answers 404", status == 404, f"{status}")
        validate("Appointment 404 OperationOutcome", outcome, "OperationOutcome")

    # Schedules and the rooms' Locations.
    status, _, schedules = call(base, referrer, "GET", "/Schedule?_count=100")
    check("Schedule search answers 200", status == 200, f"{status}")
    validate("Schedule search", schedules, "Bundle")
    schedule_ids = [e["resource"]["id"] for e in schedules.get("entry", [])]
    check("a schedule per room and radiologist", len(schedule_ids) == 6, str(schedule_ids))
    for e in schedules.get("entry", []):
        validate(f"Schedule/{e['resource']['id']} in bundle", e["resource"], "Schedule")
        status, _, read = call(base, referrer, "GET", f"/Schedule/{e['resource']['id']}")
        validate(f"read Schedule/{e['resource']['id']}", read, "Schedule")
        actor = e["resource"]["actor"][0]["reference"]
        status, _, resource = call(base, referrer, "GET", "/" + actor)
        check(f"Schedule actor {actor} resolves", status == 200, f"{status}")
        validate(f"read {actor}", resource, actor.split("/")[0])

    # Slots: a week of each schedule, free and busy.
    statuses = set()
    for sid in schedule_ids:
        status, _, slots = call(base, scheduler, "GET", f"/Slot?schedule=Schedule/{sid}")
        check(f"Slot search for {sid} answers 200", status == 200, f"{status} {slots}")
        validate(f"Slot search for {sid}", slots, "Bundle")
        for i, e in enumerate(slots.get("entry", [])):
            slot = e["resource"]
            statuses.add(slot["status"])
            validate(f"Slot/{slot['id']} in bundle", slot, "Slot")
            if i < 3 or slot["status"] != "free":
                status, _, read = call(base, scheduler, "GET", f"/Slot/{slot['id']}")
                check(f"read Slot/{slot['id']} answers 200", status == 200, f"{status}")
                validate(f"read Slot/{slot['id']}", read, "Slot")
    check("slots are free and busy", {"free", "busy"} <= statuses, str(statuses))
    status, _, outcome = call(base, referrer, "GET", f"/Slot?schedule=Schedule/{schedule_ids[0] if schedule_ids else 'room-1'}")
    check("a referrer's Slot search answers 403", status == 403, f"{status}")
    validate("Slot 403 OperationOutcome", outcome, "OperationOutcome")
    for bad in ["/Slot?start=ge2026-12-01", "/Slot?schedule=Schedule/room-1&start=ge2026-13-01",
                "/Appointment?date=tomorrow", "/Appointment?status=done", "/Schedule?actor=Patient/1"]:
        status, _, outcome = call(base, scheduler, "GET", bad)
        check(f"GET {bad} answers 400", status == 400, f"{status}")
        validate(f"GET {bad} OperationOutcome", outcome, "OperationOutcome")
    for missing in ["/Location/room-999", "/Schedule/room-999", "/Slot/room-1-0-free", "/Appointment/999999"]:
        status, _, outcome = call(base, scheduler, "GET", missing)
        check(f"GET {missing} answers 404", status == 404, f"{status}")
        validate(f"GET {missing} OperationOutcome", outcome, "OperationOutcome")


def imaging(base, referrer, other, scheduler):
    """ImagingStudy: a real DICOM file from pydicom's test data uploaded for a demo case,
    attached by staff from the reconciliation queue, then read and searched by patient."""
    import pydicom  # installed by .ci/run; its test files ship inside the package
    path = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "MR_small.dcm")
    api = base[: -len("/fhir/r4")] + "/api/v1"
    status, _, cases = call(api, referrer, "GET", "/cases?limit=100")
    check("the referrer's cases are listed", status == 200 and cases.get("cases"), f"{status}")
    case = cases["cases"][0]
    with open(path, "rb") as f:
        body = f.read()
    req = urllib.request.Request(f"{api}/cases/{case['id']}/imaging", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {referrer}",
                                          "Content-Type": "application/dicom"})
    try:
        with urllib.request.urlopen(req) as r:
            status, report = r.status, json.load(r)
    except urllib.error.HTTPError as e:
        status, report = e.code, json.load(e)
    check("a pydicom MR file is uploaded", status == 200 and report.get("stored") == 1, f"{status} {report}")
    studies = report.get("studies") or [{}]
    study_id = studies[0].get("study_id")
    if studies[0].get("outcome") == "queued":
        status, _, queued = call(base, scheduler, "GET", f"/ImagingStudy/{study_id}")
        check("a queued study is not served", status == 404, f"{status}")
        validate("queued ImagingStudy OperationOutcome", queued, "OperationOutcome")
        status, _, done = call(api, scheduler, "POST", f"/imaging/studies/{study_id}/attach",
                               {"case_id": case["id"]})
        check("staff attach it from the queue", status == 200, f"{status} {done}")
    pid = case["patient"]["id"]
    status, _, bundle = call(base, referrer, "GET", f"/ImagingStudy?patient=Patient/{pid}")
    check("ImagingStudy search answers 200", status == 200, f"{status} {bundle}")
    validate("ImagingStudy search", bundle, "Bundle")
    found = [e["resource"] for e in bundle.get("entry", [])]
    check("the study is found by patient", any(r["id"] == str(study_id) for r in found), str(bundle)[:500])
    for r in found:
        validate(f"ImagingStudy/{r['id']} in bundle", r, "ImagingStudy")
    status, _, read = call(base, referrer, "GET", f"/ImagingStudy/{study_id}")
    check("ImagingStudy read answers 200", status == 200, f"{status}")
    validate(f"read ImagingStudy/{study_id}", read, "ImagingStudy")
    check("it has series and instances", read.get("numberOfInstances") == 1 and read.get("series"), str(read)[:500])
    status, _, outcome = call(base, other, "GET", f"/ImagingStudy/{study_id}")
    check("another referrer's study answers 404", status == 404, f"{status}")
    validate("ImagingStudy 404 OperationOutcome", outcome, "OperationOutcome")
    status, _, outcome = call(base, scheduler, "GET", "/ImagingStudy?modality=MR")
    check("a search without patient answers 400", status == 400, f"{status}")
    validate("ImagingStudy 400 OperationOutcome", outcome, "OperationOutcome")


def procedures(base, nurse, referrer, other):
    """Procedure, MedicationAdministration and DocumentReference: the demo's signed
    procedure records, searched by patient and read, as clients do."""
    status, _, cap = call(base, None, "GET", "/metadata")
    served = {r["type"] for r in cap["rest"][0]["resource"]}
    check("metadata lists Procedure, MedicationAdministration, DocumentReference",
          {"Procedure", "MedicationAdministration", "DocumentReference"} <= served, str(sorted(served)))
    patients, url = set(), "/ServiceRequest?_count=100"
    while url:
        status, _, page = call(base, nurse, "GET", url)
        patients |= {e["resource"]["subject"]["reference"] for e in page.get("entry", [])}
        url = next((l["url"] for l in page.get("link", []) if l["relation"] == "next"), None)
    found = {"Procedure": 0, "MedicationAdministration": 0, "DocumentReference": 0}
    mine = None
    for patient in sorted(patients):
        for rtype in found:
            status, _, bundle = call(base, nurse, "GET", f"/{rtype}?patient={patient}")
            if status != 200 or not bundle.get("entry"):
                continue
            validate(f"{rtype} search for {patient}", bundle, "Bundle")
            for e in bundle["entry"]:
                resource = e["resource"]
                found[rtype] += 1
                validate(f"{rtype}/{resource['id']} in bundle", resource, rtype)
                status, _, read = call(base, nurse, "GET", f"/{rtype}/{resource['id']}")
                check(f"read {rtype}/{resource['id']} equals its search entry", status == 200 and read == resource)
                if rtype == "Procedure":
                    for ref in [resource["subject"]["reference"], resource["report"][0]["reference"],
                                resource["basedOn"][0]["reference"]]:
                        status, _, target = call(base, nurse, "GET", "/" + ref)
                        check(f"Procedure/{resource['id']} reference {ref} resolves", status == 200, f"{status}")
                        validate(f"read {ref}", target, ref.split("/")[0])
                    status, _, mine_read = call(base, referrer, "GET", f"/Procedure/{resource['id']}")
                    if status == 200:
                        mine = resource["id"]
    check("the demo's signed procedures are served", found["Procedure"] >= 10, str(found))
    check("with their agents and reports", found["MedicationAdministration"] >= 20
          and found["DocumentReference"] >= found["Procedure"], str(found))
    if mine:
        status, _, outcome = call(base, other, "GET", f"/Procedure/{mine}")
        check("another referrer's Procedure answers 404", status == 404, f"{status}")
        validate("Procedure 404 OperationOutcome", outcome, "OperationOutcome")
    for bad in ["/Procedure", "/DocumentReference?patient=x", "/MedicationAdministration?patient=1&code=x"]:
        status, _, outcome = call(base, nurse, "GET", bad)
        check(f"GET {bad} answers 400", status == 400, f"{status}")
        validate(f"GET {bad} OperationOutcome", outcome, "OperationOutcome")


def main():
    # The validator itself must be able to say no.
    try:
        get_fhir_model_class("Patient").model_validate({"resourceType": "Patient", "birthDate": "not-a-date"})
        check("validator rejects an invalid resource", False)
    except Exception:  # noqa: BLE001
        check("validator rejects an invalid resource", True)

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
            base = url + "/fhir/r4"
            referrer, other, scheduler = token(data_dir, "referrer"), token(data_dir, "referrer2"), token(data_dir, "scheduler")

            status, _, cap = call(base, None, "GET", "/metadata")
            check("metadata answers 200", status == 200)
            validate("metadata", cap, "CapabilityStatement")

            status, _, bundle = call(base, referrer, "GET", "/ServiceRequest?_count=2")
            check("search answers 200", status == 200)
            validate("search page 1", bundle, "Bundle")
            nxt = [l["url"] for l in bundle.get("link", []) if l["relation"] == "next"]
            check("search has a next link", bool(nxt))
            if nxt:
                status, _, page2 = call(base, referrer, "GET", nxt[0])
                validate("search page 2", page2, "Bundle")
            for entry in bundle.get("entry", []):
                sr = entry["resource"]
                validate(f"ServiceRequest/{sr['id']} in bundle", sr, "ServiceRequest")
                status, _, read = call(base, referrer, "GET", f"/ServiceRequest/{sr['id']}")
                validate(f"read ServiceRequest/{sr['id']}", read, "ServiceRequest")
                pid = sr["subject"]["reference"].split("/")[1]
                status, _, patient = call(base, referrer, "GET", f"/Patient/{pid}")
                validate(f"read Patient/{pid}", patient, "Patient")
                rid = sr["requester"]["reference"].split("/")[1]
                status, _, prac = call(base, referrer, "GET", f"/Practitioner/{rid}")
                validate(f"read Practitioner/{rid}", prac, "Practitioner")

            status, headers, created = call(base, referrer, "POST", "/ServiceRequest", order("Validator"))
            check("create answers 201 with Location", status == 201 and "location" in headers, f"{status} {created}")
            validate("created ServiceRequest", created, "ServiceRequest")

            status, _, dup = call(base, referrer, "POST", "/ServiceRequest", order("Validator"))
            check("duplicate answers 409", status == 409, f"{status}")
            validate("duplicate OperationOutcome", dup, "OperationOutcome")

            bad = order("Invalid")
            bad["contained"][0]["birthDate"] = "2099-01-01"
            bad["bodySite"][0]["coding"][0]["code"] = "C5-C6"
            status, _, outcome = call(base, referrer, "POST", "/ServiceRequest", bad)
            check("invalid order answers 422", status == 422, f"{status}")
            validate("invalid-order OperationOutcome", outcome, "OperationOutcome")
            paths = [e for i in outcome.get("issue", []) for e in i.get("expression", [])]
            check("issues name their paths", "ServiceRequest.contained[0].birthDate" in paths
                  and any(p.startswith("ServiceRequest.bodySite") for p in paths), str(paths))

            status, _, outcome = call(base, referrer, "POST", "/ServiceRequest", {"resourceType": "ServiceRequest"})
            check("structurally broken order answers 400", status == 400, f"{status}")
            validate("structure OperationOutcome", outcome, "OperationOutcome")

            status, _, outcome = call(base, None, "GET", "/ServiceRequest/1")
            check("no token answers 401", status == 401)
            validate("401 OperationOutcome", outcome, "OperationOutcome")

            created_id = created.get("id")
            status, _, outcome = call(base, other, "GET", f"/ServiceRequest/{created_id}")
            check("another referrer gets 404", status == 404)
            validate("404 OperationOutcome", outcome, "OperationOutcome")

            nurse = token(data_dir, "nurse")
            status, _, questionnaire = call(base, nurse, "GET", "/Questionnaire/irflow-screening")
            check("questionnaire answers 200", status == 200, f"{status}")
            validate("screening Questionnaire", questionnaire, "Questionnaire")
            found = 0
            for case_id in range(1, 20):
                status, _, qb = call(base, nurse, "GET", f"/QuestionnaireResponse?based-on=ServiceRequest/{case_id}")
                if status != 200:
                    continue
                for entry in qb.get("entry", []):
                    found += 1
                    validate(f"QuestionnaireResponse for ServiceRequest/{case_id}", entry["resource"], "QuestionnaireResponse")
                    status, _, qr = call(base, nurse, "GET", f"/QuestionnaireResponse/{entry['resource']['id']}")
                    validate(f"read QuestionnaireResponse/{entry['resource']['id']}", qr, "QuestionnaireResponse")
                if qb.get("entry"):
                    validate(f"QuestionnaireResponse bundle for ServiceRequest/{case_id}", qb, "Bundle")
            check("the demo's stored screenings are served", found >= 3, f"found {found}")

            scheduling(base, data_dir, referrer, other, scheduler)
            procedures(base, nurse, referrer, other)
            imaging(base, referrer, other, scheduler)

            phone = order("Scheduler")
            phone["requester"] = {"reference": created["requester"]["reference"]}
            status, _, made = call(base, scheduler, "POST", "/ServiceRequest", phone)
            check("a scheduler orders for a referrer", status == 201, f"{status} {made}")
            validate("scheduler-made ServiceRequest", made, "ServiceRequest")
        finally:
            demo.terminate()
            demo.wait(timeout=30)

    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
