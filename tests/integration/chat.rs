//! `firstline serve` with the Discord channel, against the fake Discord on loopback: a
//! customer's message answered in a thread, the conversation re-triaged there, the agents'
//! card posted and edited in place, slash commands with the agent-role check, bots and
//! unlisted channels ignored, no double answer after a reconnect or a restart.

use std::time::Duration;

use serde_json::{Value, json};

use super::desk::{Serve, mail};
use super::fake_discord::{Call, FakeDiscord};

const SUPPORT: u64 = 100;
const ROOM: u64 = 200;
const AGENT_ROLE: u64 = 300;
const CUSTOMER: u64 = 4001;
const AGENT: u64 = 4002;
const WAIT: Duration = Duration::from_secs(20);

struct Chat {
    fake: FakeDiscord,
    dir: tempfile::TempDir,
}

impl Chat {
    async fn new() -> Chat {
        let fake = FakeDiscord::start().await;
        fake.register_channel(SUPPORT, 0);
        fake.register_channel(ROOM, 0);
        Chat {
            fake,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn serve(&self) -> Serve {
        let guild = self.fake.guild_id.to_string();
        let (support, room, role) = (
            SUPPORT.to_string(),
            ROOM.to_string(),
            AGENT_ROLE.to_string(),
        );
        Serve::start_with(
            self.dir.path(),
            &[],
            &[
                ("FIRSTLINE_DISCORD_TOKEN", "fake-bot-token"),
                ("FIRSTLINE__DISCORD__ENABLED", "true"),
                ("FIRSTLINE__DISCORD__API_PROXY", &self.fake.http_base),
                ("FIRSTLINE__DISCORD__SUPPORT_CHANNELS", &support),
                ("FIRSTLINE__DISCORD__TRIAGE_CHANNEL", &room),
                ("FIRSTLINE__DISCORD__GUILD", &guild),
                ("FIRSTLINE__DISCORD__AGENT_ROLE", &role),
                ("FIRSTLINE__EMAIL__MAILDIR__POLL_MILLISECONDS", "50"),
            ],
        )
    }

    async fn say(&self, id: u64, channel: u64, author: u64, bot: bool, text: &str) {
        let m = self.fake.message(id, channel, author, bot, text);
        self.fake.dispatch("MESSAGE_CREATE", m).await;
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    async fn wait(&self, what: &str, pred: impl Fn(&Call) -> bool) -> Call {
        self.fake.wait_for_call(what, pred, WAIT).await
    }

    fn count(&self, pred: impl Fn(&Call) -> bool) -> usize {
        self.fake.calls().iter().filter(|c| pred(c)).count()
    }
}

fn replies_in(thread: u64) -> impl Fn(&Call) -> bool {
    let path = format!("/channels/{thread}/messages");
    move |c: &Call| c.is("POST", &path)
}

fn card_posts(c: &Call) -> bool {
    c.is("POST", &format!("/channels/{ROOM}/messages"))
}

fn embed(c: &Call) -> Value {
    c.body["embeds"][0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_message_is_answered_in_a_thread_and_the_conversation_re_triages() {
    let chat = Chat::new().await;
    let _serve = chat.serve();
    chat.fake.wait_ready(WAIT).await;
    let first = 910_000_000_000_000_001;
    chat.say(
        first,
        SUPPORT,
        CUSTOMER,
        false,
        "The backup of container 101 failed last night.",
    )
    .await;
    let thread = chat
        .wait("a thread on the message", |c| {
            c.is(
                "POST",
                &format!("/channels/{SUPPORT}/messages/{first}/threads"),
            )
        })
        .await;
    assert!(
        thread.body["name"].as_str().unwrap().starts_with("FL-1 "),
        "{:?}",
        thread.body
    );
    let reply = chat
        .wait("the answer in the thread", replies_in(first))
        .await;
    let text = reply.content().unwrap().to_string();
    assert!(text.contains("FL-1: proposed severity"), "{text}");
    let card = chat.wait("the agents' card", card_posts).await;
    let e = embed(&card);
    assert!(e["title"].as_str().unwrap().starts_with("FL-1: "), "{e}");
    let first_colour = e["color"].as_u64().unwrap();

    // The customer answers in the thread: re-triaged, the change announced once, the card edited.
    chat.say(
        910_000_000_000_000_002,
        first,
        CUSTOMER,
        false,
        "Worse now: the whole production node is down, all containers offline.",
    )
    .await;
    let change = chat
        .fake
        .wait_for_calls("the change announced", 2, replies_in(first), WAIT)
        .await
        .remove(1);
    let text = change.content().unwrap();
    assert!(text.contains("severity is now 1 (Urgent)"), "{text}");
    let edit = chat
        .wait("the card edited in place", |c| {
            c.method == "PATCH" && c.path.starts_with(&format!("/channels/{ROOM}/messages/"))
        })
        .await;
    assert_eq!(embed(&edit)["color"], 0xC0392B, "red for severity 1");
    assert_ne!(first_colour, 0xC0392B);
    assert_eq!(chat.count(card_posts), 1, "one card per ticket");
    assert_eq!(
        chat.count(|c| c.path.ends_with("/threads")),
        1,
        "no thread in the thread"
    );
    // A message that changes nothing is recorded but not answered.
    chat.say(
        910_000_000_000_000_003,
        first,
        CUSTOMER,
        false,
        "ok, thanks",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(chat.count(replies_in(first)), 2, "{}", chat.log());
    assert!(
        chat.fake.unknown_route_calls().is_empty(),
        "{:?}",
        chat.fake.unknown_route_calls()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bots_itself_and_unlisted_channels_are_ignored_and_nothing_is_answered_twice() {
    let chat = Chat::new().await;
    let serve = chat.serve();
    chat.fake.wait_ready(WAIT).await;
    chat.say(
        920_000_000_000_000_001,
        SUPPORT,
        5555,
        true,
        "Our production server is down.",
    )
    .await;
    chat.say(
        920_000_000_000_000_002,
        999,
        CUSTOMER,
        false,
        "Our production server is down.",
    )
    .await;
    chat.say(
        920_000_000_000_000_003,
        SUPPORT,
        chat.fake.bot_user_id,
        false,
        "Our production server is down.",
    )
    .await;
    let id = 920_000_000_000_000_004;
    chat.say(
        id,
        SUPPORT,
        CUSTOMER,
        false,
        "Our production server is down.",
    )
    .await;
    chat.wait("the answer", replies_in(id)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        chat.count(|c| c.path.ends_with("/threads")),
        1,
        "only the customer's message: {:?}",
        chat.fake.calls()
    );

    // The gateway drops; serenity resumes; Discord replays the message: no second answer.
    chat.fake.drop_connection().await;
    chat.fake.wait_reconnected(WAIT).await;
    chat.say(
        id,
        SUPPORT,
        CUSTOMER,
        false,
        "Our production server is down.",
    )
    .await;
    // A restart, and the message comes again with a new READY.
    serve.kill();
    let _serve = chat.serve();
    chat.fake.wait_ready(WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    chat.say(
        id,
        SUPPORT,
        CUSTOMER,
        false,
        "Our production server is down.",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        chat.count(replies_in(id)),
        1,
        "answered once: {}",
        chat.log()
    );
    assert_eq!(chat.count(card_posts), 1);
    assert!(chat.log().contains("already triaged"), "{}", chat.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn slash_commands_triage_show_and_override_only_for_agents() {
    let chat = Chat::new().await;
    let _serve = chat.serve();
    chat.fake.wait_ready(WAIT).await;
    let registered = chat
        .wait("the commands registered in the guild", |c| {
            c.method == "PUT"
                && c.path
                    .contains(&format!("/guilds/{}/commands", chat.fake.guild_id))
        })
        .await;
    let names: Vec<&str> = registered
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["triage", "severity", "ticket"]);

    let msg = 930_000_000_000_000_001;
    chat.say(
        msg,
        SUPPORT,
        CUSTOMER,
        false,
        "Our production server is down, all VMs offline.",
    )
    .await;
    chat.wait("the answer", replies_in(msg)).await;
    let card = chat.wait("the card", card_posts).await;
    assert_eq!(embed(&card)["color"], 0xC0392B);

    let callback = |id: u64| {
        let path = format!(
            "/interactions/{id}/{}/callback",
            FakeDiscord::interaction_token(id)
        );
        move |c: &Call| c.is("POST", &path)
    };
    let run = |id: u64, name: &str, options: Value, user: u64, roles: &[u64]| {
        chat.fake
            .command_interaction(id, name, options, user, roles, SUPPORT)
    };
    let i = run(
        1,
        "triage",
        json!([{"name": "text", "type": 3, "value": "prod HN down, all CTs offline"}]),
        CUSTOMER,
        &[],
    );
    chat.fake.dispatch("INTERACTION_CREATE", i).await;
    let c = chat.wait("/triage answered", callback(1)).await;
    assert_eq!(c.body["data"]["flags"], 64, "ephemeral");
    assert!(
        c.body["data"]["content"]
            .as_str()
            .unwrap()
            .contains("Severity 1"),
        "{:?}",
        c.body
    );

    let over = json!([
        {"name": "ticket", "type": 4, "value": 1},
        {"name": "level", "type": 4, "value": 2},
        {"name": "reason", "type": 3, "value": "lab node, the customer says"}
    ]);
    let i = run(2, "severity", over.clone(), CUSTOMER, &[]);
    chat.fake.dispatch("INTERACTION_CREATE", i).await;
    let c = chat.wait("/severity refused", callback(2)).await;
    assert!(
        c.body["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Refused"),
        "{:?}",
        c.body
    );

    let i = run(3, "severity", over, AGENT, &[AGENT_ROLE]);
    chat.fake.dispatch("INTERACTION_CREATE", i).await;
    let c = chat.wait("/severity accepted", callback(3)).await;
    assert!(
        c.body["data"]["content"]
            .as_str()
            .unwrap()
            .contains("is now severity 2"),
        "{:?}",
        c.body
    );
    let edit = chat
        .wait("the card shows the override", |c| {
            c.method == "PATCH" && embed(c)["color"] == 0xE67E22
        })
        .await;
    assert!(
        edit.body.to_string().contains("set by an agent"),
        "{}",
        edit.body
    );

    let i = run(
        4,
        "ticket",
        json!([{"name": "id", "type": 4, "value": 1}]),
        AGENT,
        &[],
    );
    chat.fake.dispatch("INTERACTION_CREATE", i).await;
    let c = chat.wait("/ticket answered", callback(4)).await;
    let text = c.body["data"]["content"].as_str().unwrap();
    assert!(text.contains("severity 2 (firstline proposed 1)"), "{text}");
    assert!(text.contains("agent override by user4002"), "{text}");

    // A later message in the thread re-triages, but the agent's level holds.
    chat.say(
        930_000_000_000_000_002,
        msg,
        CUSTOMER,
        false,
        "Still down, production, nothing works.",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        chat.count(replies_in(msg)),
        1,
        "no change to announce: {}",
        chat.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_ticket_gets_a_card_in_the_agents_room() {
    let chat = Chat::new().await;
    let _serve = chat.serve();
    chat.fake.wait_ready(WAIT).await;
    let spool = chat.dir.path().join("var/inbox/new");
    let deadline = std::time::Instant::now() + WAIT;
    while !spool.is_dir() {
        assert!(std::time::Instant::now() < deadline, "no spool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let raw = mail(
        "e1@c.test",
        "ann@c.test",
        "Backup failed",
        "The nightly backup of CT 7 failed.",
        "",
    );
    std::fs::write(spool.join("1.eml"), raw).unwrap();
    let card = chat.wait("the card of the email ticket", card_posts).await;
    let e = embed(&card);
    assert!(
        e["title"].as_str().unwrap().contains("Backup failed"),
        "{e}"
    );
    assert!(e.to_string().contains("email"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forum_post_or_a_customers_own_thread_is_a_ticket_answered_in_it() {
    let chat = Chat::new().await;
    let _serve = chat.serve();
    chat.fake.wait_ready(WAIT).await;
    let thread = 940_000_000_000_000_100;
    chat.fake
        .register_thread(thread, SUPPORT, CUSTOMER, "VPS 12 will not start");
    chat.fake
        .register_thread(940_000_000_000_000_200, 999, CUSTOMER, "elsewhere");
    chat.say(
        940_000_000_000_000_001,
        thread,
        CUSTOMER,
        false,
        "How do I resize the disk of VPS 12?",
    )
    .await;
    chat.say(
        940_000_000_000_000_002,
        940_000_000_000_000_200,
        CUSTOMER,
        false,
        "Our production server is down.",
    )
    .await;
    let reply = chat
        .wait("the answer in the customer's thread", replies_in(thread))
        .await;
    assert!(
        reply.content().unwrap().contains("FL-1"),
        "{:?}",
        reply.body
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        chat.count(|c| c.path.ends_with("/threads")),
        0,
        "no thread in a thread"
    );
    assert_eq!(
        chat.count(replies_in(940_000_000_000_000_200)),
        0,
        "not a support channel's thread"
    );
    chat.say(
        940_000_000_000_000_003,
        thread,
        CUSTOMER,
        false,
        "Now our whole production node is down, all VPS offline.",
    )
    .await;
    chat.fake
        .wait_for_calls(
            "the change announced in the same thread",
            2,
            replies_in(thread),
            WAIT,
        )
        .await;
    assert_eq!(
        chat.count(card_posts),
        1,
        "one ticket, one card: {}",
        chat.log()
    );
}
