-- Referrals: the procedure catalogue, the order's details on each case, how it
-- arrived, patient-match review, and structured return reasons on the timeline.

CREATE TABLE procedures (
    code             TEXT    PRIMARY KEY,
    name             TEXT    NOT NULL,
    patient_name     TEXT    NOT NULL,
    modalities       TEXT    NOT NULL,
    duration_minutes INTEGER NOT NULL,
    risk_asra        TEXT    NOT NULL CHECK (risk_asra IN ('low', 'intermediate', 'high')),
    risk_sir         TEXT    NOT NULL CHECK (risk_sir IN ('low', 'intermediate', 'high')),
    regions          TEXT    NOT NULL,
    risk_source      TEXT    NOT NULL,
    active           INTEGER NOT NULL CHECK (active IN (0, 1)),
    updated_at       INTEGER NOT NULL
);

-- The default catalogue. Risk classes from CLINICAL-RULES.md section 1; where one code
-- covers levels of different classes (64490: cervical intermediate, thoracic low), the
-- stricter class is stored.
INSERT INTO procedures VALUES
 ('62321', 'Cervical/thoracic interlaminar epidural steroid injection', 'Neck or upper back epidural injection', 'fluoroscopy,ct', 20, 'intermediate', 'high', 'cervical,thoracic', 'ASRA-2018 (epidural steroid injection: intermediate); SIR-2019 (high)', 1, 0),
 ('62323', 'Lumbar/sacral interlaminar or caudal epidural steroid injection', 'Low back epidural injection', 'fluoroscopy,ct', 20, 'intermediate', 'high', 'lumbar,sacral', 'ASRA-2018 (epidural steroid injection: intermediate); SIR-2019 (high)', 1, 0),
 ('64479', 'Cervical/thoracic transforaminal epidural steroid injection', 'Neck or upper back nerve root injection', 'fluoroscopy,ct', 20, 'intermediate', 'high', 'cervical,thoracic', 'ASRA-2018 (epidural steroid injection: intermediate); SIR-2019 (high)', 1, 0),
 ('64483', 'Lumbar/sacral transforaminal epidural steroid injection', 'Low back nerve root injection', 'fluoroscopy,ct', 20, 'intermediate', 'high', 'lumbar,sacral', 'ASRA-2018 (epidural steroid injection: intermediate); SIR-2019 (high)', 1, 0),
 ('64490', 'Cervical/thoracic facet joint injection or medial branch block', 'Neck or upper back facet joint injection', 'fluoroscopy,ct', 20, 'intermediate', 'high', 'cervical,thoracic', 'ASRA-2018 (cervical facet: intermediate; thoracic facet: low); SIR-2019 (cervical: high; thoracic: low); the stricter class is stored', 1, 0),
 ('64493', 'Lumbar/sacral facet joint injection or medial branch block', 'Low back facet joint injection', 'fluoroscopy,ct', 20, 'low', 'low', 'lumbar,sacral', 'ASRA-2018 (lumbar facet: low); SIR-2019 (low)', 1, 0),
 ('27096', 'Sacroiliac joint injection', 'Sacroiliac (SI) joint injection', 'fluoroscopy,ct', 20, 'low', 'low', '', 'ASRA-2018 (sacroiliac joint injection: low); SIR-2019 (low)', 1, 0);

ALTER TABLE cases ADD COLUMN levels TEXT;
ALTER TABLE cases ADD COLUMN side TEXT;
ALTER TABLE cases ADD COLUMN indication TEXT;
ALTER TABLE cases ADD COLUMN icd10 TEXT;
ALTER TABLE cases ADD COLUMN urgency TEXT NOT NULL DEFAULT 'routine';
ALTER TABLE cases ADD COLUMN prior_imaging_modality TEXT;
ALTER TABLE cases ADD COLUMN prior_imaging_date TEXT;
ALTER TABLE cases ADD COLUMN prior_imaging_place TEXT;
ALTER TABLE cases ADD COLUMN blood_thinners TEXT;
ALTER TABLE cases ADD COLUMN clinical_notes TEXT;
ALTER TABLE cases ADD COLUMN channel TEXT;
ALTER TABLE cases ADD COLUMN entered_by TEXT;
-- Space-separated ids of patients this one may be, while staff have not decided.
ALTER TABLE cases ADD COLUMN patient_review TEXT;
CREATE INDEX cases_patient ON cases (patient_id, procedure_code);

ALTER TABLE case_events ADD COLUMN reason_code TEXT;

-- Patients are matched on name and date of birth with a key normalised by irflow
-- (lowercase, single spaces); rows from before this migration get SQL's lower().
ALTER TABLE patients ADD COLUMN match_key TEXT;
UPDATE patients SET match_key = lower(family_name) || '|' || lower(given_name) || '|' || date_of_birth;
CREATE INDEX patients_match_key ON patients (match_key);
