-- Built-in accounts, for deployments without Better Auth. email is normalised (trimmed,
-- lowercased) by todo-core; password_hash is an argon2id PHC string.
create table accounts (
    id            text    primary key,
    email         text    not null unique,
    name          text,
    password_hash text    not null,
    created_at    integer not null
);
