//! Subscriptions R5 Backport on R4: topic, manager, rest-hook sender, websocket hub, heartbeats, event log, `$status`, `$events`.
