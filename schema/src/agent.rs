//! Promoted agent columns: typed copies of the attributes agent instrumentations emit.
//!
//! The candidate attribute names are data: [`PROMOTED`] lists, per column, the names to look
//! for in order of precedence. The raw attribute always stays in `attributes`.

/// How a promoted value is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
}

/// One promoted column and the attribute names it is filled from, first match wins.
#[derive(Debug)]
pub struct Promoted {
    pub column: &'static str,
    pub kind: Kind,
    pub candidates: &'static [&'static str],
}

/// The promoted columns, in schema order.
pub const PROMOTED: &[Promoted] = &[
    Promoted {
        column: "operation",
        kind: Kind::Text,
        candidates: &[
            "gen_ai.operation.name",
            "openinference.span.kind",
            "traceloop.span.kind",
        ],
    },
    Promoted {
        column: "agent_name",
        kind: Kind::Text,
        candidates: &["gen_ai.agent.name", "agent.name"],
    },
    Promoted {
        column: "tool_name",
        kind: Kind::Text,
        candidates: &["gen_ai.tool.name", "tool.name"],
    },
    Promoted {
        column: "tool_call_id",
        kind: Kind::Text,
        candidates: &["gen_ai.tool.call.id", "tool_call.id"],
    },
    Promoted {
        column: "conversation_id",
        kind: Kind::Text,
        candidates: &["gen_ai.conversation.id", "session.id"],
    },
    Promoted {
        column: "request_model",
        kind: Kind::Text,
        candidates: &["gen_ai.request.model", "llm.model_name"],
    },
    Promoted {
        column: "response_model",
        kind: Kind::Text,
        candidates: &["gen_ai.response.model"],
    },
    Promoted {
        column: "provider",
        kind: Kind::Text,
        candidates: &["gen_ai.provider.name", "gen_ai.system", "llm.provider"],
    },
    Promoted {
        column: "input_tokens",
        kind: Kind::Integer,
        candidates: &[
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
        ],
    },
    Promoted {
        column: "output_tokens",
        kind: Kind::Integer,
        candidates: &[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ],
    },
];
