-- slipway server schema, version 1 (PostgreSQL). docs/server-api.md describes it.
CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    uses_left BIGINT,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    credential_hash TEXT NOT NULL UNIQUE,
    enrolled_at BIGINT NOT NULL,
    enrolled_with TEXT,
    last_seen BIGINT,
    facts TEXT NOT NULL,
    facts_version BIGINT NOT NULL
);
CREATE TABLE facts_history (
    machine_id TEXT NOT NULL REFERENCES machines(id),
    version BIGINT NOT NULL,
    reported_at BIGINT NOT NULL,
    facts TEXT NOT NULL,
    PRIMARY KEY (machine_id, version)
);
CREATE TABLE collections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    rule TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE collection_members (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    machine_id TEXT NOT NULL REFERENCES machines(id),
    explicit BIGINT NOT NULL,
    by_rule BIGINT NOT NULL,
    PRIMARY KEY (collection_id, machine_id)
);
CREATE INDEX collection_members_machine ON collection_members(machine_id);
CREATE TABLE packages (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    size BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL
);
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    record TEXT NOT NULL,
    collection_id TEXT NOT NULL REFERENCES collections(id),
    answer TEXT,
    packages TEXT NOT NULL,
    requirements TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at BIGINT,
    max_parallel BIGINT NOT NULL,
    cancelled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE deployment_machines (
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    machine_id TEXT NOT NULL REFERENCES machines(id),
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    hostname TEXT,
    done BIGINT,
    total BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, machine_id)
);
CREATE INDEX deployment_machines_machine ON deployment_machines(machine_id, state);
CREATE INDEX deployment_machines_state ON deployment_machines(deployment_id, state);
CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines(id),
    seq BIGINT NOT NULL,
    deployment_id TEXT,
    kind TEXT NOT NULL,
    state TEXT,
    message TEXT,
    done BIGINT,
    total BIGINT,
    at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (machine_id, seq)
);
