//! The code systems a backport Subscription and its notifications use.

macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $code:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every code, in the order of its code system.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The FHIR code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// Reads a FHIR code (case-sensitive); `None` when unknown.
            pub fn from_code(code: &str) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code_enum! {
    /// `Subscription.status` (`http://hl7.org/fhir/subscription-status`).
    SubscriptionStatus {
        /// Created by the client, not yet verified by the server.
        Requested => "requested",
        /// Notifications are being sent.
        Active => "active",
        /// Delivery failed; the server keeps counting events.
        Error => "error",
        /// Switched off (by the client, on expiry, or after too many errors).
        Off => "off",
    }
}

code_enum! {
    /// The notification type of a status Parameters (`subscription-notification-type`).
    NotificationType {
        /// Set-up or verification of the channel.
        Handshake => "handshake",
        /// Keep-alive, sent every heartbeat period of silence.
        Heartbeat => "heartbeat",
        /// One or more events.
        EventNotification => "event-notification",
        /// The answer to `$status`.
        QueryStatus => "query-status",
        /// The answer to `$events`.
        QueryEvent => "query-event",
    }
}

code_enum! {
    /// `Subscription.channel.type` (R4 `subscription-channel-type`).
    ChannelType {
        /// HTTP POST of the notification Bundle to `channel.endpoint`.
        RestHook => "rest-hook",
        /// Frames on a websocket bound with `$get-ws-binding-token`.
        Websocket => "websocket",
        /// E-mail.
        Email => "email",
        /// SMS.
        Sms => "sms",
        /// FHIR messaging.
        Message => "message",
    }
}

code_enum! {
    /// How much of each resource a notification carries (`backport-payload-content`).
    PayloadContent {
        /// No resource ids or bodies: only the status.
        Empty => "empty",
        /// The focus references (and entries without `resource`).
        IdOnly => "id-only",
        /// The resources themselves.
        FullResource => "full-resource",
    }
}
