//! Unit tests of the wire format: every packet read back, the bytes distcc 3.4 writes, and
//! every malformed or oversized input refused before it costs memory.

use super::*;
use std::io;

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

#[test]
fn files_stream_through_small_buffers_both_ways() {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    for version in [Version::Plain, Version::Lzo] {
        for body in [&b""[..], b"int x;\n", &big] {
            let mut wire = Vec::new();
            write_file_from(&mut wire, DOTI, version, &mut &body[..], body.len() as u64).unwrap();
            let mut plain = Vec::new();
            write_file(&mut plain, DOTI, version, body).unwrap();
            assert_eq!(wire, plain, "the same bytes as write_file");
            let mut out = Vec::new();
            let len = read_file_into(&mut &wire[..], DOTI, version, &Limits::default(), &mut out)
                .unwrap();
            assert_eq!((len, &out[..]), (body.len() as u64, body));
        }
    }
    // A body cut short, and one larger than the limit, are errors.
    let mut wire = Vec::new();
    write_file(&mut wire, DOTI, Version::Plain, &big).unwrap();
    wire.truncate(wire.len() - 1);
    let got = read_file_into(
        &mut &wire[..],
        DOTI,
        Version::Plain,
        &Limits::default(),
        &mut io::sink(),
    );
    assert!(matches!(
        got,
        Err(ProtocolError::Truncated { what: "DOTI" })
    ));
    let limits = Limits {
        max_file: 1000,
        ..Limits::default()
    };
    let got = read_file_into(
        &mut &wire[..],
        DOTI,
        Version::Plain,
        &limits,
        &mut io::sink(),
    );
    assert!(matches!(got, Err(ProtocolError::TooLarge { .. })));
}

fn sample_request(version: Version) -> Request {
    Request {
        version,
        argv: argv(&["gcc", "-c", "x.c", "-o", "x.o"]),
        doti: b"int x;\n".to_vec(),
    }
}

fn encoded(req: &Request) -> Vec<u8> {
    let mut v = Vec::new();
    req.write(&mut v).unwrap();
    v
}

#[test]
fn headers_are_lowercase_zero_padded_hex() {
    assert_eq!(&header(DIST, 1), b"DIST00000001");
    assert_eq!(&header(DOTI, 0x461c), b"DOTI0000461c");
    assert_eq!(&header(STAT, u32::MAX), b"STATffffffff");
}

#[test]
fn every_token_reads_back() {
    for t in [DIST, ARGC, ARGV, DOTI, DONE, STAT, SERR, SOUT, DOTO] {
        for v in [0, 1, 0x6e00, 0xdead_beef, u32::MAX] {
            assert_eq!(read_header(&mut &header(t, v)[..], t).unwrap(), v);
        }
    }
}

#[test]
fn uppercase_hex_is_accepted_like_distcc() {
    assert_eq!(read_header(&mut &b"DIST0000000A"[..], DIST).unwrap(), 10);
}

#[test]
fn plain_request_matches_distcc_bytes() {
    // The exact 116 bytes distcc 3.4 sends for `gcc -c x.c -o x.o` with "int x;\n".
    let expected: &[u8] = b"DIST00000001ARGC00000005ARGV00000003gccARGV00000002-c\
ARGV00000003x.cARGV00000002-oARGV00000003x.oDOTI00000007int x;\n";
    assert_eq!(encoded(&sample_request(Version::Plain)), expected);
}

#[test]
fn lzo_request_matches_distcc_bytes() {
    let bytes = encoded(&sample_request(Version::Lzo));
    let mut expected = b"DIST00000002ARGC00000005ARGV00000003gccARGV00000002-c\
ARGV00000003x.cARGV00000002-oARGV00000003x.oDOTI0000000b"
        .to_vec();
    expected.extend_from_slice(&[0x18, 0x69, 0x6e, 0x74, 0x20, 0x78, 0x3b, 0x0a, 0x11, 0, 0]);
    assert_eq!(bytes, expected);
}

#[test]
fn requests_round_trip() {
    for v in [Version::Plain, Version::Lzo] {
        let mut req = sample_request(v);
        let bytes = encoded(&req);
        assert_eq!(
            Request::read(&mut &bytes[..], &Limits::default()).unwrap(),
            req
        );
        req.doti = Vec::new();
        let bytes = encoded(&req);
        assert!(bytes.ends_with(b"DOTI00000000"));
        assert_eq!(
            Request::read(&mut &bytes[..], &Limits::default()).unwrap(),
            req
        );
    }
}

#[test]
fn replies_round_trip() {
    for v in [Version::Plain, Version::Lzo] {
        let reply = Reply {
            status: 0,
            stderr: b"warning: x\n".to_vec(),
            stdout: Vec::new(),
            output: vec![0x7f, b'E', b'L', b'F', 0, 0, 0, 1],
            deps: None,
            from_cache: false,
            compiler: None,
            load: None,
            times: None,
        };
        let mut bytes = Vec::new();
        reply.write(&mut bytes, v).unwrap();
        assert_eq!(
            Reply::read(&mut &bytes[..], v, &Limits::default()).unwrap(),
            reply
        );
    }
}

#[test]
fn notes_carry_the_load_first_and_the_compiler_last() {
    let load = Load {
        cpus: 8,
        slots: 10,
        running: 3,
        queued: 0,
    };
    let times = JobTimes {
        waited_us: 1,
        compile_us: 1 << 40,
        cpu_us: 3,
    };
    let mut bytes = Vec::new();
    Reply::write_note(&mut bytes, true, times, Some(load)).unwrap();
    Reply::write_compiler_note(&mut bytes, "gcc 12").unwrap();
    // What follows the last note is not read.
    bytes.extend_from_slice(b"DONE00000001");
    // Without the compiler check, reading stops at the load, before the identity.
    let mut r = &bytes[..];
    let mut got = Reply::default();
    got.read_note(&mut r, false);
    assert!(got.from_cache);
    assert_eq!(
        (got.times, got.load, got.compiler),
        (Some(times), Some(load), None)
    );
    assert!(r.starts_with(b"CCID"));
    let mut r = &bytes[..];
    let mut got = Reply::default();
    got.read_note(&mut r, true);
    assert_eq!(got.compiler.as_deref(), Some("gcc 12"));
    assert_eq!(got.load, Some(load));
    assert_eq!(r, b"DONE00000001");
    // Without a load (inetd), the notes end with the connection.
    let mut bytes = Vec::new();
    Reply::write_note(&mut bytes, false, JobTimes::default(), None).unwrap();
    Reply::write_compiler_note(&mut bytes, "gcc 12").unwrap();
    let mut got = Reply::default();
    got.read_note(&mut &bytes[..], true);
    assert_eq!((got.compiler.as_deref(), got.load), (Some("gcc 12"), None));
}

#[test]
fn a_load_ask_and_its_answer_round_trip() {
    for ask in [Ask::Wait, Ask::MayRefuse, Ask::Probe] {
        assert_eq!(parse_load_ask(&load_ask(ask)), Some(ask));
    }
    assert_eq!(parse_load_ask(b"DIST00000001"), None);
    let answer = Answer {
        admitted: false,
        load: Load {
            cpus: 2,
            slots: 4,
            running: 4,
            queued: 1,
        },
    };
    let bytes = answer.encode();
    assert_eq!(&bytes[..12], b"LOAD00000014");
    assert_eq!(Answer::read(&mut &bytes[..]).unwrap(), answer);
    // A longer body from a later daemon is read, its rest ignored; a shorter one is not.
    let mut longer = header(LOAD, 24).to_vec();
    longer.extend_from_slice(&bytes[12..]);
    longer.extend_from_slice(&[0, 0, 0, 9]);
    assert_eq!(Answer::read(&mut &longer[..]).unwrap(), answer);
    let mut short = header(LOAD, 8).to_vec();
    short.extend_from_slice(&bytes[12..20]);
    assert!(Answer::read(&mut &short[..]).is_err());
}

#[test]
fn failed_reply_never_carries_output() {
    let reply = Reply {
        status: 1 << 8,
        stderr: b"error\n".to_vec(),
        stdout: Vec::new(),
        output: b"junk".to_vec(),
        deps: None,
        from_cache: false,
        compiler: None,
        load: None,
        times: None,
    };
    let mut bytes = Vec::new();
    reply.write(&mut bytes, Version::Plain).unwrap();
    assert!(bytes.ends_with(b"DOTO00000000"));
    let back = Reply::read(&mut &bytes[..], Version::Plain, &Limits::default()).unwrap();
    assert!(back.output.is_empty());
}

#[test]
fn reply_version_must_match() {
    let mut bytes = Vec::new();
    Reply::default().write(&mut bytes, Version::Plain).unwrap();
    assert!(matches!(
        Reply::read(&mut &bytes[..], Version::Lzo, &Limits::default()),
        Err(ProtocolError::VersionMismatch {
            sent: 2,
            received: 1
        })
    ));
}

#[test]
fn every_truncation_is_an_error() {
    for v in [Version::Plain, Version::Lzo] {
        let bytes = encoded(&sample_request(v));
        for cut in 0..bytes.len() {
            let err = Request::read(&mut &bytes[..cut], &Limits::default()).unwrap_err();
            assert!(
                matches!(
                    err,
                    ProtocolError::Truncated { .. } | ProtocolError::Lzo { .. }
                ),
                "cut {cut}: {err}"
            );
        }
    }
}

#[test]
fn wrong_token_is_named() {
    let err = read_header(&mut &b"DOTO00000001"[..], DOTI).unwrap_err();
    assert_eq!(
        err.to_string(),
        "protocol derailment: expected token \"DOTI\", got \"DOTO\""
    );
    let err = Request::read(&mut &b"GET / HTTP/1.1\r\n\r\n"[..], &Limits::default());
    assert!(matches!(err, Err(ProtocolError::WrongToken { .. })));
}

#[test]
fn bad_hex_is_an_error() {
    for bad in [
        &b"DIST0000000g"[..],
        b"DIST-0000001",
        b"DIST 0000001",
        b"DIST+0000001",
    ] {
        assert!(matches!(
            read_header(&mut &bad[..], DIST),
            Err(ProtocolError::BadHex { .. })
        ));
    }
}

#[test]
fn unsupported_versions_are_refused() {
    for v in [0, 4, 0xffff_ffff] {
        let bytes = header(DIST, v);
        assert!(matches!(
            read_request_header(&mut &bytes[..], &Limits::default()),
            Err(ProtocolError::UnsupportedVersion(x)) if x == v
        ));
    }
}

#[test]
fn oversize_lengths_are_refused_before_allocating() {
    let limits = Limits::default();
    let mut huge_argc = header(DIST, 1).to_vec();
    huge_argc.extend_from_slice(&header(ARGC, u32::MAX));
    assert!(matches!(
        read_request_header(&mut &huge_argc[..], &limits),
        Err(ProtocolError::TooLarge { token: ARGC, .. })
    ));

    let mut huge_arg = header(DIST, 1).to_vec();
    huge_arg.extend_from_slice(&header(ARGC, 1));
    huge_arg.extend_from_slice(&header(ARGV, u32::MAX));
    assert!(matches!(
        read_request_header(&mut &huge_arg[..], &limits),
        Err(ProtocolError::TooLarge { token: ARGV, .. })
    ));

    let mut req = encoded(&sample_request(Version::Plain));
    req.truncate(req.len() - 19);
    req.extend_from_slice(&header(DOTI, u32::MAX));
    let small = Limits {
        max_file: 1 << 20,
        ..limits
    };
    assert!(matches!(
        Request::read(&mut &req[..], &small),
        Err(ProtocolError::TooLarge { token: DOTI, .. })
    ));
    // Within the limit but never sent: truncated, without allocating 4 GiB first.
    assert!(matches!(
        Request::read(&mut &req[..], &limits),
        Err(ProtocolError::TooLarge { .. }) | Err(ProtocolError::Truncated { .. })
    ));
}

#[test]
fn argv_total_is_bounded() {
    let limits = Limits {
        max_argv_bytes: 10,
        ..Limits::default()
    };
    let mut bytes = Vec::new();
    write_request_header(
        &mut bytes,
        Version::Plain,
        &argv(&["gcc", "-c", "abcdefgh.c"]),
    )
    .unwrap();
    assert!(matches!(
        read_request_header(&mut &bytes[..], &limits),
        Err(ProtocolError::TooLarge { token: ARGV, .. })
    ));
}

#[test]
fn zero_argc_and_non_utf8_are_refused() {
    let mut bytes = header(DIST, 1).to_vec();
    bytes.extend_from_slice(&header(ARGC, 0));
    assert!(read_request_header(&mut &bytes[..], &Limits::default()).is_err());
    let mut bytes = header(DIST, 1).to_vec();
    bytes.extend_from_slice(&header(ARGC, 1));
    bytes.extend_from_slice(&header(ARGV, 2));
    bytes.extend_from_slice(&[0xff, 0xfe]);
    assert!(matches!(
        read_request_header(&mut &bytes[..], &Limits::default()),
        Err(ProtocolError::BadArgument { index: 0 })
    ));
}

#[test]
fn corrupt_lzo_body_is_an_error() {
    let mut bytes = Vec::new();
    write_request_header(&mut bytes, Version::Lzo, &argv(&["gcc", "-c", "x.c"])).unwrap();
    bytes.extend_from_slice(&header(DOTI, 4));
    bytes.extend_from_slice(&[0x40, 0x00, 0x11, 0x00]);
    assert!(matches!(
        Request::read(&mut &bytes[..], &Limits::default()),
        Err(ProtocolError::Lzo { token: DOTI, .. })
    ));
}

#[test]
fn a_source_expands_only_within_its_bound() {
    // 4 MiB of zeros compress to some 18 KiB: far beyond 64 times plus 1 MiB.
    let zeros = vec![0u8; 4 << 20];
    let mut req = Vec::new();
    Request {
        version: Version::Lzo,
        argv: argv(&["gcc", "-c", "x.c", "-o", "x.o"]),
        doti: zeros.clone(),
    }
    .write(&mut req)
    .unwrap();
    let err = Request::read(&mut &req[..], &Limits::default()).unwrap_err();
    let ProtocolError::Expands {
        token: DOTI,
        compressed,
        bound,
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!(
        bound as usize,
        compressed as usize * MAX_SOURCE_EXPANSION + SOURCE_EXPANSION_SLACK
    );
    assert!(err.to_string().contains("expands beyond"), "{err}");
    // The same body as an object is fine: objects may hold zero-filled data.
    let mut wire = Vec::new();
    write_file(&mut wire, DOTO, Version::Lzo, &zeros).unwrap();
    let got = read_file(&mut &wire[..], DOTO, Version::Lzo, &Limits::default()).unwrap();
    assert!(got == zeros);
    // Just within the bound decodes; the cap of `max_file` still applies below it.
    let small = vec![0u8; SOURCE_EXPANSION_SLACK];
    let mut wire = Vec::new();
    write_file(&mut wire, DOTI, Version::Lzo, &small).unwrap();
    assert_eq!(
        read_file(&mut &wire[..], DOTI, Version::Lzo, &Limits::default())
            .unwrap()
            .len(),
        small.len()
    );
    let tight = Limits {
        max_file: 100_000,
        ..Limits::default()
    };
    assert!(matches!(
        read_file(&mut &wire[..], DOTI, Version::Lzo, &tight),
        Err(ProtocolError::Lzo { .. })
    ));
    assert_eq!(source_bound(10, usize::MAX), 640 + SOURCE_EXPANSION_SLACK);
    assert_eq!(source_bound(usize::MAX, 5), 5);
}

/// The files part of a protocol 3 request (after `NFIL`), as `write_pump_request` sends it.
fn pump_files_bytes(files: &[PumpFile]) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_pump_request(&mut bytes, "/w", &["gcc".to_string()], files).unwrap();
    let at = bytes.windows(4).position(|w| w == NFIL).unwrap();
    bytes[at..].to_vec()
}

fn read_all_files(bytes: &[u8], limits: &Limits) -> Result<Vec<ReceivedFile>, ProtocolError> {
    let mut r = bytes;
    let mut files = PumpFiles::start(&mut r, limits)?;
    let mut out = Vec::new();
    while let Some(f) = files.next(&mut r, limits)? {
        out.push(f);
    }
    assert!(r.is_empty());
    Ok(out)
}

#[test]
fn pump_request_matches_the_spec_example() {
    let argv: Vec<String> = ["gcc", "-c", "a.c", "-o", "a.o"].map(String::from).to_vec();
    let files = [
        PumpFile {
            name: "/w/a.c".into(),
            content: Content::File(lzo::compress(b"int a;\n")),
        },
        PumpFile {
            name: "/w/b.h".into(),
            content: Content::Link("a.h".into()),
        },
    ];
    let mut bytes = Vec::new();
    write_pump_request(&mut bytes, "/w", &argv, &files).unwrap();
    let mut want = b"DIST00000003CDIR00000002/wARGC00000005ARGV00000003gccARGV00000002-c\
ARGV00000003a.cARGV00000002-oARGV00000003a.oNFIL00000002NAME00000006/w/a.cFILE0000000b"
        .to_vec();
    want.extend_from_slice(&[0x18, 0x69, 0x6e, 0x74, 0x20, 0x61, 0x3b, 0x0a, 0x11, 0, 0]);
    want.extend_from_slice(b"NAME00000006/w/b.hLINK00000003a.h");
    assert_eq!(bytes, want);
    let got = read_all_files(&pump_files_bytes(&files), &Limits::default()).unwrap();
    assert_eq!(
        got,
        [
            ReceivedFile {
                name: "/w/a.c".into(),
                content: Received::File(b"int a;\n".to_vec()),
            },
            ReceivedFile {
                name: "/w/b.h".into(),
                content: Received::Link("a.h".into()),
            },
        ]
    );
}

#[test]
fn pump_files_are_bounded() {
    let file = |name: &str, data: &[u8]| PumpFile {
        name: name.into(),
        content: Content::File(if data.is_empty() {
            Vec::new()
        } else {
            lzo::compress(data)
        }),
    };
    let tight = Limits {
        max_files: 2,
        max_name_len: 16,
        max_files_bytes: 4096,
        ..Limits::default()
    };
    // An empty file is an empty body.
    let ok = pump_files_bytes(&[file("/a/forcing", b""), file("/a/b.h", b"x")]);
    assert!(ok.windows(16).any(|w| w == b"FILE00000000NAME"));
    assert_eq!(read_all_files(&ok, &tight).unwrap().len(), 2);
    // Too many files: refused at NFIL, before any is read.
    let mut many = header(NFIL, 3).to_vec();
    many.extend_from_slice(b"NAME");
    assert!(matches!(
        read_all_files(&many, &tight),
        Err(ProtocolError::TooLarge { token: NFIL, .. })
    ));
    // A name too long.
    let long = pump_files_bytes(&[file(&format!("/{}", "x".repeat(16)), b"x")]);
    assert!(matches!(
        read_all_files(&long, &tight),
        Err(ProtocolError::TooLarge { token: NAME, .. })
    ));
    // All bodies together too large, though each is small.
    let big = vec![b'x'; 3000];
    let two = pump_files_bytes(&[file("/a", &big), file("/b", &big)]);
    assert!(matches!(
        read_all_files(&two, &tight),
        Err(ProtocolError::Expands { token: FILE, .. }
            | ProtocolError::TooLarge { token: FILE, .. })
    ));
    // Something else than FILE or LINK after NAME.
    let mut derailed = header(NFIL, 1).to_vec();
    derailed.extend_from_slice(b"NAME00000002/aDOTI00000000");
    assert!(matches!(
        read_all_files(&derailed, &tight),
        Err(ProtocolError::WrongToken { expected: FILE, .. })
    ));
    // A path that is not UTF-8.
    let mut bad = header(NFIL, 1).to_vec();
    bad.extend_from_slice(b"NAME00000002/\xffFILE00000000");
    assert!(matches!(
        read_all_files(&bad, &tight),
        Err(ProtocolError::BadPath { token: NAME })
    ));
}

#[test]
fn pump_reply_carries_deps_on_success_only() {
    let ok = Reply {
        status: 0,
        output: b"obj".to_vec(),
        deps: Some(b"a.o: a.c\n".to_vec()),
        ..Reply::default()
    };
    let mut bytes = Vec::new();
    ok.write(&mut bytes, Version::Pump).unwrap();
    let back = Reply::read(&mut &bytes[..], Version::Pump, &Limits::default()).unwrap();
    assert_eq!(back, ok);
    let failed = Reply {
        status: 1 << 8,
        deps: Some(b"x".to_vec()),
        ..Reply::default()
    };
    let mut bytes = Vec::new();
    failed.write(&mut bytes, Version::Pump).unwrap();
    assert!(bytes.ends_with(b"DOTO00000000"));
    let back = Reply::read(&mut &bytes[..], Version::Pump, &Limits::default()).unwrap();
    assert_eq!(back.deps, None);
    // Protocol 2 never carries one.
    let mut bytes = Vec::new();
    ok.write(&mut bytes, Version::Lzo).unwrap();
    assert!(!bytes.windows(4).any(|w| w == DOTD));
}

#[test]
fn pump_request_head_reads_cdir_first() {
    let argv = argv(&["gcc", "-c", "a.c"]);
    let mut bytes = Vec::new();
    write_pump_request(&mut bytes, "/w", &argv, &[]).unwrap();
    let mut r = &bytes[..];
    let head = read_request_head(&mut r, &Limits::default()).unwrap();
    assert_eq!(
        head,
        RequestHead {
            version: Version::Pump,
            cwd: Some("/w".into()),
            argv: argv.clone(),
        }
    );
    assert_eq!(r, b"NFIL00000000");
    // The protocol 1 and 2 reader does not take it for one of its own.
    assert!(matches!(
        read_request_header(&mut &bytes[..], &Limits::default()),
        Err(ProtocolError::WrongToken { .. })
    ));
    let mut plain = Vec::new();
    write_request_header(&mut plain, Version::Lzo, &argv).unwrap();
    let head = read_request_head(&mut &plain[..], &Limits::default()).unwrap();
    assert_eq!(
        (head.version, head.cwd, head.argv),
        (Version::Lzo, None, argv)
    );
}

#[test]
fn system_headers_are_compared_by_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let header = dir.path().join("h.h");
    std::fs::write(&header, "int x;\n").unwrap();
    let path = header.to_str().unwrap();
    let list = system_headers_list([path, "/no/such/header.h"].into_iter(), &[]);
    // The missing header is left out; the one here is as listed.
    assert_eq!(String::from_utf8_lossy(&list).lines().count(), 1);
    assert_eq!(first_other_system_header(&list), None);
    std::fs::write(&header, "int xy;\n").unwrap();
    assert_eq!(first_other_system_header(&list).as_deref(), Some(path));
    for odd in [&b"7 1 2 /no/such/header.h\n"[..], b"not a list\n"] {
        assert!(first_other_system_header(odd).is_some());
    }
    // A header the client does not have: fine when the host has none either.
    let absent = ["/no/such/header.h".to_string()];
    assert_eq!(
        first_other_system_header(&system_headers_list([].into_iter(), &absent)),
        None
    );
    let here = [path.to_string()];
    let list = system_headers_list([].into_iter(), &here);
    assert_eq!(first_other_system_header(&list).as_deref(), Some(path));
}
