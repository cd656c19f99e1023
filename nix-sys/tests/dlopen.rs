//! The `dlopen` feature's load errors: a directory without the Nix libraries gives an error
//! naming the library and the override, and nothing is loaded. (Its own test binary: the
//! libraries are loaded once per process.)
#![cfg(feature = "dlopen")]

#[test]
fn missing_libraries_are_an_error_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: the only test of this binary sets the variable before anything reads it.
    unsafe { std::env::set_var(nix_sys::DLOPEN_DIR_VAR, dir.path()) };
    let first = dir.path().join(format!("{}nixutilc{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    assert_eq!(nix_sys::library_paths()[0], first);
    let err = nix_sys::load().unwrap_err();
    match &err {
        nix_sys::LoadError::Library { path, .. } => assert_eq!(path, &first),
        other => panic!("expected a library error, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(&first.display().to_string()) && text.contains(nix_sys::DLOPEN_DIR_VAR), "{text}");
    assert!(!nix_sys::is_loaded());
    // Every later call gives the same answer.
    assert_eq!(nix_sys::load().unwrap_err(), err);
}
