//! How an error reads on one line (a log field, an invocation error, an audit message).

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
