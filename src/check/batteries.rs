//! The labs `labrun check` knows and their batteries.
//!
//! Every phase is bounded (a scenario `timeout` of at most 20 s, reply timeouts of seconds)
//! and starts its own server. Echo phases are written for one client at a time unless the
//! lab serves more, so that the same text checks lab 1 (`echo-once`, which may end after its
//! client) and the servers that go on.

use super::Phase;

/// A lab whose programs `labrun check` can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lab {
    /// Lab 1 as the course writes it: one client, and the server may end when it leaves.
    EchoOnce,
    /// Clients served one after another, for ever.
    EchoIterative,
    /// Concurrent echo, whatever the mechanism (threads, fork, select, asyncio).
    EchoThreaded,
}

impl Lab {
    /// Every lab, for listings.
    pub const ALL: [Lab; 3] = [Lab::EchoOnce, Lab::EchoIterative, Lab::EchoThreaded];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Lab::EchoOnce => "echo-once",
            Lab::EchoIterative => "echo-iterative",
            Lab::EchoThreaded => "echo-threaded",
        }
    }

    /// One line on the program it expects.
    pub fn summary(self) -> &'static str {
        match self {
            Lab::EchoOnce => "an echo server for one client; it may end when the client leaves",
            Lab::EchoIterative => "an echo server that serves clients one after another, for ever",
            Lab::EchoThreaded => "an echo server that serves many clients at once",
        }
    }

    /// Placeholders a lone `.py` file gets after `{port}`: the further ports its lab needs.
    pub fn extra_ports(self) -> &'static [&'static str] {
        &[]
    }

    /// Its battery, in the order it runs: the phases its kind of lab shares, then its own.
    pub fn phases(self) -> Vec<&'static Phase> {
        let (shared, own): (&[Phase], &[Phase]) = match self {
            Lab::EchoOnce => (&ECHO_ONCE, &[]),
            Lab::EchoIterative => (&ECHO, &ITERATIVE),
            Lab::EchoThreaded => (&ECHO, &THREADED),
        };
        shared.iter().chain(own).collect()
    }
}

/// The phases every echo lab shares, for a server of one client (`exits` allowed).
macro_rules! single_client_phases {
    ($server:literal) => {
        [
            Phase {
                name: "text",
                catches: "every ASCII letter, digit and punctuation mark back exactly, in messages \
                          of up to 3,000 bytes (a server that changes case, strips or reads once)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"text\"\nmessages = 40\nsize = { min = 1, max = 3000 }\n\
                     payload = \"ascii\"\ntimeout = \"3s\"\n[expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "boundaries",
                catches: "1-byte messages, then sizes around one recv(1024) and 64 KiB ones (a \
                          server that assumes a message fits one read)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"boundaries\"\nmessages = 60\n\
                     size = { min = 1020, max = 1030 }\ntimeout = \"3s\"\n\
                     [expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "large",
                catches: "messages of 64 KiB, more than the kernel's buffers hold at once (a server \
                          that uses send() where sendall() is needed)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"large\"\nmessages = 4\nsize = \"64KiB\"\n\
                     payload = \"binary\"\ntimeout = \"5s\"\n[expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "utf8",
                catches: "text with 2-, 3- and 4-byte characters, some split across byte 1024 (a \
                          server that decodes each chunk)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"utf8\"\nmessages = 30\nsize = { min = 1, max = 4096 }\n\
                     payload = \"utf8\"\ntimeout = \"3s\"\n[expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "binary",
                catches: "all 256 byte values, NUL and newlines included (a server that assumes \
                          text or lines)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"binary\"\nmessages = 30\n\
                     size = { min = 256, max = 4096 }\npayload = \"binary\"\ntimeout = \"3s\"\n\
                     [expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "conversation",
                catches: "150 messages on one connection, each answered within 250 ms at p99 (a \
                          server that loses one now and then, or sleeps before replying)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"talker\"\nmessages = 150\nsize = { min = 1, max = 200 }\n\
                     timeout = \"2s\"\n[expect]\necho = \"exact\"\nerrors = 0\n\
                     latency = { p99 = \"250ms\" }\n"
                ),
            },
        ]
    };
}

/// The echo phases of a server that may end after its one client (lab 1).
static ECHO_ONCE: [Phase; 6] = single_client_phases!("@SERVER@\nexits = \"after-clients\"");

/// The echo phases of a server that goes on.
static ECHO: [Phase; 6] = single_client_phases!("@SERVER@");

/// What only an iterative server is asked.
static ITERATIVE: [Phase; 2] = [
    Phase {
        name: "queue",
        catches: "three clients arriving together, each served in its turn, and the server \
                      still there for a fourth (a server that ends after its first client)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"queued\"\ncount = 3\nmessages = 5\n\
                       size = { min = 1, max = 2000 }\nstart = \"together\"\ntimeout = \"3s\"\n\
                       [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n",
    },
    Phase {
        name: "resets",
        catches: "a client killed mid-message (reset), then fresh clients served (a server \
                      that lets ConnectionResetError end it)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"killed\"\ncount = 1\nmessages = 3\nfaulty = 1\n\
                       fault = { kind = \"abort\", after = 2 }\ntimeout = \"3s\"\n\
                       [[clients]]\nname = \"after\"\ncount = 2\nmessages = 5\n\
                       start_after = \"1s\"\ntimeout = \"3s\"\n\
                       [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n",
    },
];

/// What only a concurrent server is asked.
static THREADED: [Phase; 2] = [
    Phase {
        name: "concurrent",
        catches: "eight clients held open at once, all served together (a server that joins \
                      each client's thread, or a pool that holds clients back)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"together\"\ncount = 8\nmessages = 5\n\
                       size = { min = 1, max = 2000 }\nthink = \"50ms\"\nstart = \"together\"\n\
                       timeout = \"5s\"\n[expect]\necho = \"exact\"\nerrors = 0\n\
                       concurrency = \"concurrent\"\n",
    },
    Phase {
        name: "resets",
        catches: "clients killed mid-message (reset) beside others, then fresh clients \
                      served (a server that lets ConnectionResetError end it)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"mixed\"\ncount = 4\nmessages = 5\nfaulty = 2\n\
                       fault = { kind = \"abort\", after = 2 }\ntimeout = \"3s\"\n\
                       [[clients]]\nname = \"after\"\ncount = 2\nmessages = 5\n\
                       start_after = \"1s\"\ntimeout = \"3s\"\n\
                       [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n",
    },
];
