use std::collections::BTreeSet;

use super::*;

#[test]
fn a_directory_name_becomes_a_dns_label() {
    assert_eq!(label("My_Project.v2"), "my-project-v2");
    assert_eq!(label("2048"), "app-2048");
    assert_eq!(label("--"), "app");
}

#[test]
fn a_local_port_is_the_remote_one_when_free_else_the_next() {
    let none = BTreeSet::new();
    assert_eq!(local_port(8000, &none, &|_| true), Some(8000));
    assert_eq!(local_port(80, &none, &|_| true), Some(8080));
    assert_eq!(local_port(8000, &none, &|p| p != 8000), Some(8001));
    let used = BTreeSet::from([3000]);
    assert_eq!(local_port(3000, &used, &|_| true), Some(3001));
    // Never the status page's port.
    assert_eq!(local_port(10350, &none, &|_| true), Some(10351));
}

#[test]
fn keys_and_env_spellings() {
    assert_eq!(env_spelling("database-url"), "DATABASE_URL");
    assert!(has_part("todo-backend", "backend"));
    assert!(!has_part("todo-backends", "backend"));
}
