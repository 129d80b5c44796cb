//! What the integration tests that need KVM share: whether /dev/kvm can be used here.

/// Whether /dev/kvm can be opened for reading and writing. Prints why not and returns
/// false, or fails the test under CI=true, where KVM must be there.
pub fn kvm_usable() -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            let msg = format!("/dev/kvm is not usable: {e}");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {msg}"
            );
            eprintln!("skipped: {msg}");
            false
        }
    }
}
