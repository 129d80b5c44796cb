//! A VM's disk for the work: the host gives a Linux guest a raw image as a virtio-blk
//! device and names it in [`ENV`] on the kernel command line; the workload, as init,
//! mounts it (ext4) at [`MOUNT`] before the work starts and unmounts it before the machine
//! powers off, so the `file` work's fsync'ed writes go to a file on the host's disk, as
//! they do natively and in a container.

/// The environment variable that names the block device to mount (`/dev/vda`).
pub const ENV: &str = "VCBENCH_DISK";
/// Where the disk is mounted in the guest.
pub const MOUNT: &str = "/disk";
/// The file system the host formats the disk with.
pub const FSTYPE: &str = "ext4";
