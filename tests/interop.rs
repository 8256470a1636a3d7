//! Interoperability with distcc 3.4 (Debian's `distcc` package): our client against its
//! daemon, and its client against our daemon, in protocols 1 and 2. Each direction builds
//! and links the example program, which must run, with objects identical to a local build.

mod common;

use common::*;

fn build_with(client: &str, daemon: &Daemon, lzo: bool) {
    let project = Project::example();
    let expected = project.reference_build(&["-j4"]);
    let hosts = format!("{}{}", daemon.host(), if lzo { ",lzo" } else { "" });
    let cc = format!("CC={client} gcc");
    let before = daemon.compiled_ok();
    let out = project.make(&["-j4", &cc], &[("DISTCC_HOSTS", &hosts)]);
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("locally"),
        "a job fell back to a local compile:\n{stderr}"
    );
    assert_same_outputs(&expected, &project.outputs());
    assert!(run_program(&project.path().join("hello")).contains("Hello, world"));
    assert_eq!(
        daemon.wait_compiled(before + 5),
        before + 5,
        "{}",
        daemon.log_text()
    );
}

#[test]
fn our_client_with_distccd_34_protocol_1() {
    let d = Daemon::distcc_34();
    build_with(OUR_DISTCC, &d, false);
}

#[test]
fn our_client_with_distccd_34_protocol_2() {
    let d = Daemon::distcc_34();
    build_with(OUR_DISTCC, &d, true);
}

#[test]
fn distcc_34_client_with_our_distccd_protocol_1() {
    require_distcc_34();
    let d = Daemon::ours(&[]);
    build_with(DISTCC_34, &d, false);
}

#[test]
fn distcc_34_client_with_our_distccd_protocol_2() {
    require_distcc_34();
    let d = Daemon::ours(&[]);
    build_with(DISTCC_34, &d, true);
}
