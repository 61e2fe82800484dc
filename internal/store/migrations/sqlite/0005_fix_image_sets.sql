-- One row per action that kept images: written in the same store
-- transaction as its images, before the target database commits, with
-- confirmed_at NULL (pending: the target's outcome is unknown); set once
-- the target committed. columns, when set, names the values of the JSON
-- arrays the images hold (NULL: each image is a JSON object).
CREATE TABLE fix_image_sets (
    action_id    INTEGER PRIMARY KEY REFERENCES actions(id),
    columns      TEXT,
    created_at   TEXT NOT NULL,
    confirmed_at TEXT
);
