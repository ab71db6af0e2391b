//! The text log format (`log.format = "text"`, the default): tracing-subscriber's own line,
//! with ` request_id=ID` appended when the line was logged while serving a request.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps an event formatter `F` (the default one, which decides colour itself) to add the
/// request id.
#[derive(Debug, Default, Clone)]
pub struct WithRequestId<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = crate::request_id::current() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let end = line.trim_end_matches('\n').len();
        // Sanitised when it was set: only `A-Z a-z 0-9 . _ -`.
        line.insert_str(end, &format!(" request_id={}", id.to_str().unwrap_or("")));
        writer.write_str(&line)
    }
}
