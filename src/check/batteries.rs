//! The labs `labrun check` knows and their batteries.
//!
//! Every phase is bounded (a scenario `timeout` of 20 s, 60 s for the broadcast load, whose
//! clients a run deadline would cut off before a lossy relay shows; reply timeouts of
//! seconds) and starts its own server. Echo phases are written for one client at a time unless the
//! lab serves more, so that the same text checks lab 1 (`echo-once`, which may end after its
//! client) and the servers that go on.

use super::Phase;

/// A lab whose programs `labrun check` can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lab {
    /// Lab 1 as the course writes it: one client, and the server may end when it leaves.
    EchoOnce,
    /// Clients served one after another, for ever.
    EchoIterative,
    /// Concurrent echo, whatever the mechanism (threads, fork, select, asyncio).
    EchoThreaded,
    /// Turn-by-turn chat: the operator's replies come through the server's stdin.
    Chat,
    /// Two independent echo servers on two ports, in one program.
    TwoServers,
    /// A chat room relaying every member's messages to all the others.
    Broadcast,
    /// Echo over UDP: every datagram back whole.
    UdpEcho,
    /// Lab 1's client: typed lines to the echo server, each echo printed.
    EchoClient,
    /// Lab 2's client: typed lines to the chat server, each operator reply printed.
    ChatClient,
    /// Lab 4's client: the user chooses which of two servers to talk to.
    ChooseClient,
}

impl Lab {
    /// Every lab, for listings.
    pub const ALL: [Lab; 10] = [
        Lab::EchoOnce,
        Lab::EchoIterative,
        Lab::EchoThreaded,
        Lab::Chat,
        Lab::TwoServers,
        Lab::Broadcast,
        Lab::UdpEcho,
        Lab::EchoClient,
        Lab::ChatClient,
        Lab::ChooseClient,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Lab::EchoOnce => "echo-once",
            Lab::EchoIterative => "echo-iterative",
            Lab::EchoThreaded => "echo-threaded",
            Lab::Chat => "chat",
            Lab::TwoServers => "two-servers",
            Lab::Broadcast => "broadcast",
            Lab::UdpEcho => "udp-echo",
            Lab::EchoClient => "echo-client",
            Lab::ChatClient => "chat-client",
            Lab::ChooseClient => "choose-client",
        }
    }

    /// One line on the program it expects.
    pub fn summary(self) -> &'static str {
        match self {
            Lab::EchoOnce => "an echo server for one client; it may end when the client leaves",
            Lab::EchoIterative => "an echo server that serves clients one after another, for ever",
            Lab::EchoThreaded => "an echo server that serves many clients at once",
            Lab::Chat => {
                "a chat server whose operator types each reply (input()), one client at a time, back to accept() after each"
            }
            Lab::TwoServers => "one program serving echo on two ports, {port} and {port2}",
            Lab::Broadcast => "a chat room: every message to every other member, exactly once",
            Lab::UdpEcho => "a UDP echo server: every datagram back, whole",
            Lab::EchoClient => "the echo client: typed lines sent, echoes printed, exit ends it",
            Lab::ChatClient => "the chat client: typed lines sent, replies printed, exit ends it",
            Lab::ChooseClient => "the client that asks 1 or 2 and talks to {port} or {port2}",
        }
    }

    /// Whether its program is a client (labrun plays the servers).
    pub fn tests_a_client(self) -> bool {
        matches!(self, Lab::EchoClient | Lab::ChatClient | Lab::ChooseClient)
    }

    /// The ports a lab gives its program beyond `{port}`, as a student writes them.
    pub fn extra_ports(self) -> &'static [&'static str] {
        match self {
            Lab::TwoServers | Lab::ChooseClient => &["{port2}"],
            _ => &[],
        }
    }

    /// How a lone Python `file` of this lab is run: `python3 FILE {port}`, and `{port2}`
    /// where the lab has two ports (as a student writes them, before [`Lab::scenario_word`]).
    pub fn python_command(self, file: &str) -> Vec<String> {
        let start = ["python3", file, "{port}"];
        start
            .into_iter()
            .chain(self.extra_ports().iter().copied())
            .map(str::to_owned)
            .collect()
    }

    /// A word of the student's command in the words of its battery's scenarios: `{port2}`
    /// is the port of the battery's server `second`, and where a client chooses between two
    /// servers `{port}` is the first one's, whichever it reaches.
    pub fn scenario_word(self, word: &str) -> String {
        let word = word.replace("{port2}", "{port:second}");
        match self {
            Lab::ChooseClient => word.replace("{port}", "{port:first}"),
            _ => word,
        }
    }

    /// Its battery, in the order it runs: the phases its kind of lab shares, then its own.
    pub fn phases(self) -> Vec<&'static Phase> {
        let (shared, own): (&[Phase], &[Phase]) = match self {
            Lab::EchoOnce => (&ECHO_ONCE, &[]),
            Lab::EchoIterative => (&ECHO, &ITERATIVE),
            Lab::EchoThreaded => (&ECHO, &THREADED),
            Lab::Chat => (&CHAT, &[]),
            Lab::TwoServers => (&TWO_SERVERS, &[]),
            Lab::Broadcast => (&BROADCAST, &[]),
            Lab::UdpEcho => (&UDP_ECHO, &[]),
            Lab::EchoClient => (&ECHO_CLIENT, &[]),
            Lab::ChatClient => (&CHAT_CLIENT, &[]),
            Lab::ChooseClient => (&CHOOSE_CLIENT, &[]),
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
                catches: "every ASCII letter, digit and punctuation mark back exactly, in \
                          messages of 1,023, 1,024 and 1,025 bytes: one recv(1024) and a byte \
                          either side (a server that changes case or strips, assumes a message \
                          fits one read, or takes a full 1,024-byte read to mean that more is \
                          coming)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"text\"\nmessages = 30\n\
                     size = { min = 1023, max = 1025 }\npayload = \"ascii\"\ntimeout = \"3s\"\n\
                     [expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "large",
                catches: "messages just over 64 KiB, more than the kernel's buffers hold at once (a \
                          server that uses send() where sendall() is needed)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"large\"\nmessages = 4\nsize = { min = 65537, max = 66500 }\n\
                     timeout = \"5s\"\n[expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "utf8",
                catches: "text of 1,025 to 2,047 bytes with 2-, 3- and 4-byte characters, some split \
                          across byte 1024 (a server that decodes each chunk)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"utf8\"\nmessages = 20\nsize = { min = 1025, max = 2047 }\n\
                     payload = \"utf8\"\ntimeout = \"3s\"\n[expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "binary",
                catches: "all 256 byte values, NUL and newlines included (a server that assumes \
                          text, lines or C strings)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"binary\"\nmessages = 20\n\
                     size = { min = 256, max = 1000 }\npayload = \"binary\"\ntimeout = \"3s\"\n\
                     [expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "half-close",
                catches: "a client that shuts down its sending side right after its last message: \
                          the whole echo still comes back, then the server closes (a server that \
                          closes before echoing what came with the end of the stream, or never \
                          leaves its loop when recv() returns b'')",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"half-closer\"\nmessages = 3\n\
                     size = { min = 1, max = 1000 }\nhalf_close = true\ntimeout = \"3s\"\n\
                     [expect]\necho = \"exact\"\nerrors = 0\n"
                ),
            },
            Phase {
                name: "conversation",
                catches: "150 messages of 1 to 8 bytes on one connection, each answered within \
                          250 ms at p99 (a server that loses one now and then, waits for a full \
                          buffer, or sleeps before replying)",
                scenario: concat!(
                    "timeout = \"20s\"\n[[server]]\nname = \"server\"\n",
                    $server,
                    "\n[[clients]]\nname = \"talker\"\nmessages = 150\nsize = { min = 1, max = 8 }\n\
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

/// A client that sends without reading until the server blocks in `sendall()`, then dies;
/// fresh clients must be served after it. `$catches` says it in the terms of the lab.
macro_rules! reset_in_sendall_phase {
    ($catches:literal) => {
        Phase {
            name: "reset-in-sendall",
            catches: $catches,
            scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"killed\"\ncount = 1\nmessages = 2\nfaulty = 1\n\
                       fault = { kind = \"abort-in-sendall\", after = 1 }\n\
                       size = { min = 1100, max = 2000 }\ntimeout = \"3s\"\n\
                       [[clients]]\nname = \"after\"\ncount = 2\nmessages = 5\n\
                       start_after = \"1s\"\nramp = \"400ms\"\ntimeout = \"3s\"\n\
                       [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n",
        }
    };
}

/// What only an iterative server is asked.
static ITERATIVE: [Phase; 3] = [
    Phase {
        name: "queue",
        catches: "three clients arriving together, each served in its turn, and the server \
                  still there for a fourth (a server that ends after its first client, or opens \
                  a listening socket per client and resets those queued on the old one)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"queued\"\ncount = 3\nmessages = 5\n\
                       size = { min = 1, max = 1000 }\nstart = \"together\"\ntimeout = \"3s\"\n\
                       [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n",
    },
    Phase {
        name: "resets",
        catches: "a client killed between two messages (a reset while the server waits in \
                  recv()), then fresh clients served (a server that lets ConnectionResetError \
                  end it)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"killed\"\ncount = 1\nmessages = 3\nfaulty = 1\n\
                       fault = { kind = \"abort-idle\", after = 2 }\ntimeout = \"3s\"\n\
                       [[clients]]\nname = \"after\"\ncount = 2\nmessages = 5\n\
                       start_after = \"500ms\"\nramp = \"400ms\"\ntimeout = \"3s\"\n\
                       [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n",
    },
    reset_in_sendall_phase!(
        "a client that stops reading while the server writes its echo, then dies: the reset \
         comes inside sendall(), as BrokenPipeError or ConnectionResetError, and fresh clients \
         must still be served (a server that catches errors around recv() only)"
    ),
];

/// What only a concurrent server is asked.
static THREADED: [Phase; 4] = [
    Phase {
        name: "concurrent",
        catches: "eight clients held open at once, all served together (a server that joins \
                      each client's thread, or a pool that holds clients back)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"together\"\ncount = 8\nmessages = 5\n\
                       size = { min = 1, max = 1000 }\nthink = \"50ms\"\nstart = \"together\"\n\
                       timeout = \"5s\"\n[expect]\necho = \"exact\"\nerrors = 0\n\
                       concurrency = \"concurrent\"\n",
    },
    Phase {
        name: "resets",
        catches: "clients killed between messages (a reset in recv()) beside others, then \
                  fresh clients served (a server that lets ConnectionResetError end it)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                       [[clients]]\nname = \"mixed\"\ncount = 4\nmessages = 5\nfaulty = 2\n\
                       fault = { kind = \"abort-idle\", after = 2 }\ntimeout = \"3s\"\n\
                       [[clients]]\nname = \"after\"\ncount = 2\nmessages = 5\n\
                       start_after = \"500ms\"\ntimeout = \"3s\"\n\
                       [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n",
    },
    reset_in_sendall_phase!(
        "a client that stops reading while the server writes its echo, then dies: the reset \
         comes inside sendall() or send(), and fresh clients must still be served (a \
         single-threaded server that catches errors around recv() only)"
    ),
    Phase {
        name: "children",
        catches: "nine clients, six one after another and three together, then one more; \
                  once they have left the server has as many processes as when it started and \
                  at most one zombie (a fork server that never calls waitpid(), or whose child \
                  returns to accept())",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                   [[clients]]\nname = \"one-by-one\"\ncount = 6\nmessages = 3\nramp = \"300ms\"\n\
                   timeout = \"3s\"\n\
                   [[clients]]\nname = \"together\"\ncount = 3\nmessages = 3\n\
                   start_after = \"400ms\"\ntimeout = \"3s\"\n\
                   [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\nreaps = true\n",
    },
];

/// Lab 2: the server reads a client's message, prints it, and sends what its operator types.
static CHAT: [Phase; 3] = [
    Phase {
        name: "turns",
        catches: "each reply is the operator's next line, nothing comes before it is typed, an \
                  operator's empty line (Enter pressed by mistake) is asked again rather than \
                  sent, and `exit` ends the session (a server that lags a turn, sends an empty \
                  reply the client waits on for ever, or ignores exit)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                   exits = \"after-clients\"\n\
                   stdin = { lines = [\"Hi, who is this?\", \"\", \"Nice to meet you.\", \"Fine, and you?\", \"Bye!\"] }\n\
                   [[clients]]\nname = \"student\"\nworkload = \"chat\"\n\
                   messages = [\"hello\", \"it's the lab client\", \"how are you?\", \"see you\", \"exit\"]\n\
                   think = \"20ms\"\ntimeout = \"3s\"\n[expect]\nerrors = 0\n",
    },
    Phase {
        name: "long-replies",
        catches: "operator replies of over 1,100 bytes, longer than one recv(1024), with \
                  accented text, each whole and in its turn (a server that cuts a reply to fit \
                  the client's recv(1024), or sends it in another encoding than UTF-8)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                   exits = \"after-clients\"\nstdin = { reply = \"réponse {n}: « une ligne plus longue qu'un seul recv(1024) » \
                   0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvw\
                   0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789abcdefghijklmnopqrstuvw fin\" }\n\
                   [[clients]]\nname = \"student\"\nworkload = \"chat\"\nmessages = 6\n\
                   size = { min = 1, max = 200 }\npayload = \"utf8\"\nthink = \"20ms\"\ntimeout = \"3s\"\n\
                   [expect]\nerrors = 0\n",
    },
    Phase {
        name: "sessions",
        catches: "four clients one after another, ending by `exit`, by closing, by a reset, and \
                  by `exit` again: the server goes back to accept() after each and the \
                  operator's next line answers the next client (a server that ends after one \
                  chat, or that a reset ends)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\n\
                   stdin = { reply = \"Line {n} from the operator\" }\n\
                   [[clients]]\nname = \"says-exit\"\nworkload = \"chat\"\n\
                   messages = [\"hello\", \"how are you?\", \"exit\"]\nthink = \"20ms\"\ntimeout = \"3s\"\n\
                   [[clients]]\nname = \"closes\"\nworkload = \"chat\"\n\
                   messages = [\"hi, me again\", \"bye\"]\nthink = \"20ms\"\ntimeout = \"3s\"\n\
                   [[clients]]\nname = \"is-killed\"\nworkload = \"chat\"\n\
                   messages = [\"third client here\", \"about to crash\"]\nleave = \"reset\"\n\
                   think = \"20ms\"\ntimeout = \"3s\"\n\
                   [[clients]]\nname = \"last\"\nworkload = \"chat\"\n\
                   messages = [\"still there?\", \"exit\"]\nthink = \"20ms\"\ntimeout = \"3s\"\n\
                   [expect]\nerrors = 0\n",
    },
];

/// Lab 4 as one program: `{port}` and `{port2}` (server `second`) served by one process.
static TWO_SERVERS: [Phase; 3] = [
    Phase {
        name: "both",
        catches: "both ports listen in the one program and each echoes its own clients exactly \
                  (a program that opens one port, or serves both from one socket)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"first\"\n@SERVER@\n\
                   [[server]]\nname = \"second\"\nprocess = \"first\"\n\
                   [[clients]]\nname = \"to-first\"\nserver = \"first\"\ncount = 2\nmessages = 30\n\
                   size = { min = 1, max = 1000 }\nthink = \"10ms\"\ntimeout = \"3s\"\n\
                   [[clients]]\nname = \"to-second\"\nserver = \"second\"\ncount = 2\nmessages = 30\n\
                   size = { min = 1, max = 1000 }\nthink = \"10ms\"\ntimeout = \"3s\"\n\
                   [expect]\necho = \"exact\"\nerrors = 0\n",
    },
    Phase {
        name: "independent",
        catches: "each port answers while the other holds a client (a program that serves the \
                  two ports one after the other, in one loop)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"first\"\n@SERVER@\n\
                   [[server]]\nname = \"second\"\nprocess = \"first\"\n\
                   [[clients]]\nname = \"holds-first\"\nserver = \"first\"\ncount = 1\nmessages = 8\n\
                   think = \"200ms\"\ntimeout = \"2s\"\n\
                   [[clients]]\nname = \"to-second\"\nserver = \"second\"\ncount = 1\nmessages = 20\n\
                   think = \"10ms\"\nstart_after = \"200ms\"\ntimeout = \"1s\"\n\
                   [[clients]]\nname = \"holds-second\"\nserver = \"second\"\ncount = 1\nmessages = 8\n\
                   think = \"200ms\"\nstart_after = \"1800ms\"\ntimeout = \"2s\"\n\
                   [[clients]]\nname = \"to-first\"\nserver = \"first\"\ncount = 1\nmessages = 20\n\
                   think = \"10ms\"\nstart_after = \"2s\"\ntimeout = \"1s\"\n\
                   [expect]\necho = \"exact\"\nerrors = 0\n",
    },
    Phase {
        name: "resets",
        catches: "a client killed between messages on one port, then both ports still serve (a \
                  program whose ports die together)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"first\"\n@SERVER@\n\
                   [[server]]\nname = \"second\"\nprocess = \"first\"\n\
                   [[clients]]\nname = \"killed\"\nserver = \"first\"\ncount = 1\nmessages = 3\n\
                   faulty = 1\nfault = { kind = \"abort-idle\", after = 2 }\ntimeout = \"3s\"\n\
                   [[clients]]\nname = \"after-first\"\nserver = \"first\"\ncount = 1\nmessages = 5\n\
                   start_after = \"500ms\"\ntimeout = \"3s\"\n\
                   [[clients]]\nname = \"after-second\"\nserver = \"second\"\ncount = 1\nmessages = 5\n\
                   start_after = \"500ms\"\ntimeout = \"3s\"\n\
                   [expect]\necho = \"exact\"\nerrors = 0\nsurvives = true\n",
    },
];

/// Lab 5: a room relaying each member's messages to every other member.
static BROADCAST: [Phase; 3] = [
    Phase {
        name: "room",
        catches: "members staying, leaving and joining late each get every other member's \
                  messages exactly once, never their own and nothing said before they joined (a \
                  relay that echoes to the sender, registers twice, keeps writing to the \
                  departed or replays its history to newcomers)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"room\"\n@SERVER@\n\
                   [[clients]]\nname = \"stayers\"\ncount = 6\nworkload = \"broadcast\"\nmessages = 20\n\
                   size = { min = 10, max = 300 }\nthink = \"5ms\"\n\
                   [[clients]]\nname = \"leavers\"\ncount = 2\nworkload = \"broadcast\"\nmessages = 20\n\
                   leave_after = 5\nthink = \"5ms\"\n\
                   [[clients]]\nname = \"latecomers\"\ncount = 2\nworkload = \"broadcast\"\nmessages = 10\n\
                   start_after = \"2500ms\"\nthink = \"5ms\"\n\
                   [expect]\nfanout = \"exactly-once\"\nerrors = 0\n",
    },
    Phase {
        name: "departures",
        catches: "members leaving while others talk, two by closing and two killed (a reset), \
                  with a quiet member joined right after them: it must still get every message \
                  (a relay that prunes the departed from the list it is iterating and skips the \
                  member after each, or one that a member's reset ends)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"room\"\n@SERVER@\n\
                   [[clients]]\nname = \"leavers\"\ncount = 2\nworkload = \"broadcast\"\nmessages = 30\n\
                   leave_after = 12\nthink = \"30ms\"\n\
                   [[clients]]\nname = \"killed\"\ncount = 2\nworkload = \"broadcast\"\nmessages = 30\n\
                   leave_after = 12\nleave = \"reset\"\nthink = \"30ms\"\n\
                   [[clients]]\nname = \"quiet\"\ncount = 1\nworkload = \"broadcast\"\nmessages = 1\n\
                   start_after = \"100ms\"\n\
                   [[clients]]\nname = \"talkers\"\ncount = 6\nworkload = \"broadcast\"\nmessages = 40\n\
                   think = \"20ms\"\nstart_after = \"200ms\"\ntimeout = \"2s\"\n\
                   [expect]\nfanout = \"exactly-once\"\nerrors = 0\n",
    },
    Phase {
        name: "load",
        catches: "members that pause reading in turn while the others send, until the relay \
                  holds more than the kernel buffers: nothing lost, nothing reordered (a relay \
                  that ignores short or failed sends)",
        scenario: "timeout = \"60s\"\n[[server]]\nname = \"room\"\n@SERVER@\n\
                   [[clients]]\nname = \"members\"\ncount = 4\nworkload = \"broadcast\"\nmessages = 6000\n\
                   size = { min = 500, max = 900 }\nload = true\ntimeout = \"10s\"\n\
                   [expect]\nfanout = \"exactly-once\"\nerrors = 0\n",
    },
];

/// The UDP echo lab.
static UDP_ECHO: [Phase; 3] = [
    Phase {
        name: "datagrams",
        catches: "1,000 datagrams of up to 8 KiB from ten clients at once, each back once, \
                  whole and to its sender, under 1% lost (a server that reads recvfrom(1024), or \
                  answers only its first client)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\ntransport = \"udp\"\n\
                   [[clients]]\nname = \"senders\"\ncount = 10\nmessages = 100\n\
                   size = { min = 1, max = \"8KiB\" }\ntimeout = \"1s\"\n\
                   [expect]\necho = \"exact\"\nloss = \"<= 1%\"\n",
    },
    Phase {
        name: "large",
        catches: "datagrams up to the largest UDP allows, from one client (65,507 bytes with labrun's tag; a server with a fixed \
                  small buffer truncates them)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\ntransport = \"udp\"\n\
                   [[clients]]\nname = \"large\"\ncount = 1\nmessages = 20\n\
                   size = { min = 30000, max = 65443 }\ntimeout = \"1s\"\n\
                   [expect]\necho = \"exact\"\nloss = \"<= 5%\"\n",
    },
    Phase {
        name: "binary",
        catches: "all 256 byte values in every datagram, from one client (a server that \
                  decodes or strips)",
        scenario: "timeout = \"20s\"\n[[server]]\nname = \"server\"\n@SERVER@\ntransport = \"udp\"\n\
                   [[clients]]\nname = \"binary\"\ncount = 1\nmessages = 200\n\
                   size = { min = 256, max = 2048 }\npayload = \"binary\"\ntimeout = \"1s\"\n\
                   [expect]\necho = \"exact\"\nloss = \"<= 1%\"\n",
    },
];

/// Lab 1's client against an echo server labrun plays on port 6000 (clients often
/// hard-code it; the run has a network of its own). Lines are typed at a steady pace,
/// whatever the client's prompt.
static ECHO_CLIENT: [Phase; 3] = [
    Phase {
        name: "typed",
        catches: "typed lines reach the server byte-exact (accents, an empty line, a 2,000-byte \
                  line) and every echo is printed whole; `exit` ends it without a traceback (a \
                  client that reads once with recv(1024), or never ends)",
        scenario: "timeout = \"20s\"\n[[played_server]]\nname = \"server\"\nrole = \"echo\"\nport = 6000\n\
                   [[client_program]]\nname = \"student\"\n@SERVER@\ntimeout = \"8s\"\n\
                   stdin = { lines = [\"hello\", \"\", \"héllo wörld, ünïcode\", \
                   { text = \"0123456789\", repeat = 200 }, \"exit\"] }\n",
    },
    Phase {
        name: "server-closes",
        catches: "the server closing the connection after one echo: the client ends by itself \
                  rather than spinning or hanging",
        scenario: "timeout = \"20s\"\n[[played_server]]\nname = \"server\"\nrole = \"echo\"\nport = 6000\n\
                   close_after = 1\n\
                   [[client_program]]\nname = \"student\"\n@SERVER@\ntimeout = \"8s\"\n\
                   stdin = { lines = [\"hello\", \"are you there?\", \"exit\"] }\n",
    },
    Phase {
        name: "server-down",
        catches: "no server listening: the client says so and ends, without a traceback",
        scenario: "timeout = \"20s\"\n[[played_server]]\nname = \"server\"\nrole = \"down\"\nport = 6000\n\
                   [[client_program]]\nname = \"student\"\n@SERVER@\ntimeout = \"8s\"\n\
                   stdin = { lines = [\"hello\", \"exit\"] }\n",
    },
];

/// Lab 2's client against a chat server labrun plays, whose operator answers each line.
static CHAT_CLIENT: [Phase; 1] = [Phase {
    name: "turns",
    catches: "each typed line sent, each operator reply printed, `exit` sent and the client \
              ends (a client that stops at the first reply, or keeps running after exit)",
    scenario: "timeout = \"20s\"\n[[played_server]]\nname = \"server\"\nrole = \"chat\"\nport = 6000\n\
               replies = [\"hi there\", \"fine, thanks\"]\n\
               [[client_program]]\nname = \"student\"\n@SERVER@\ntimeout = \"8s\"\n\
               stdin = { lines = [\"hello\", \"how are you?\", \"exit\"] }\n",
}];

/// Lab 4's client: typing 1 must reach the server on the first port, 2 the second.
static CHOOSE_CLIENT: [Phase; 1] = [Phase {
    name: "choose",
    catches: "typing 1 reaches the first server and 2 the second, and the line sent after is \
              the one that arrives there (a client that always uses the first port)",
    scenario: "timeout = \"20s\"\n[[played_server]]\nname = \"first\"\nrole = \"echo\"\nport = 6000\n\
               [[played_server]]\nname = \"second\"\nrole = \"echo\"\nport = 6001\n\
               [[client_program]]\nname = \"picks-1\"\n@SERVER@\nreaches = \"first\"\ntimeout = \"8s\"\n\
               stdin = { lines = [\"1\", \"hello one\", \"exit\"] }\nexpect = { sent = [\"hello one\"] }\n\
               [[client_program]]\nname = \"picks-2\"\n@SERVER@\nreaches = \"second\"\ntimeout = \"8s\"\n\
               stdin = { lines = [\"2\", \"hello two\", \"exit\"] }\nexpect = { sent = [\"hello two\"] }\n",
}];
