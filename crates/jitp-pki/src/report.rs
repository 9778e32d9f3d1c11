//! How an error reads on one line (a log field, an invocation error, an audit message), and where record lines go
//! ([`Sink`]: the provisioning audit lines and the guard's refusal lines alike).

/// `e` and its sources, outermost first, joined with ": ": the one line a log or an invocation error shows. A
/// source whose text the line already holds (an error that prints its source in its own message, as most
/// here do) is not repeated, so each fact is said once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// Where record lines go (audit lines, the guard's refusal and count lines): one call per line, without its
/// newline.
pub type Sink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Standard output, one `write` per line so that concurrent lines never interleave. Every binary writes its
/// records here (a Lambda's reach CloudWatch Logs, whose metric filters match their fields).
pub fn stdout() -> Sink {
    std::sync::Arc::new(|line: &str| {
        use std::io::Write as _;
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        let mut out = std::io::stdout().lock();
        // Nowhere better to report a closed stdout: the line is lost, the decision stands.
        let _ = out.write_all(buf.as_bytes()).and_then(|()| out.flush());
    })
}
