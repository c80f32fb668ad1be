//! Reading the vote form: `vote=<option id>`, URL-encoded as our page and the
//! reference's send it, or `multipart/form-data` as `curl -F vote=a` does.
//! Anything else is refused with a status and a sentence a person can act on.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use ballot::{VoteOption, VoteOptions};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kit::http::BODY_READ_TIMEOUT;

/// The form is a few bytes; anything bigger is not from our page.
pub const MAX_BODY: usize = 1024;

pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// The option the form chose, if the request is a well-formed vote.
pub async fn read_choice<'o>(
    headers: &HeaderMap,
    body: Body,
    options: &'o VoteOptions,
) -> Result<&'o VoteOption, Refusal> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let media_type = content_type.and_then(|text| text.parse::<mime::Mime>().ok());
    let multipart = match media_type.as_ref().map(|m| (m.type_(), m.subtype())) {
        Some((mime::APPLICATION, mime::WWW_FORM_URLENCODED)) => None,
        Some((mime::MULTIPART, mime::FORM_DATA)) => Some(boundary(content_type.unwrap_or(""))?),
        _ => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Send the vote as a form (application/x-www-form-urlencoded \
                 or multipart/form-data).",
            ))
        }
    };
    let body = read_body(body).await?;
    if body.trim_ascii().is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "The form was empty: pick an option.",
        ));
    }
    let chosen = match multipart {
        None => url_encoded_votes(&body)?,
        // Boxed: its state would otherwise enlarge every vote's future.
        Some(boundary) => Box::pin(multipart_votes(body, boundary))
            .await
            .map_err(|e| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    format!("The form could not be read: {e}."),
                )
            })?,
    };
    // Other fields (a submit button's, say) are ignored.
    let [id] = chosen.as_slice() else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "The form needs exactly one `vote` field: pick an option.",
        ));
    };
    options.get(id).ok_or_else(|| {
        let known: Vec<&str> = options.iter().map(|o| o.id).collect();
        refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "There is no option {id:?}; choose one of {}.",
                known.join(", ")
            ),
        )
    })
}

/// The whole body, if it is at most [`MAX_BODY`] bytes and arrives within
/// [`BODY_READ_TIMEOUT`].
async fn read_body(body: Body) -> Result<Bytes, Refusal> {
    let reading = tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, MAX_BODY).collect());
    let Ok(read) = reading.await else {
        return Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "The form did not arrive within {} s.",
                BODY_READ_TIMEOUT.as_secs()
            ),
        ));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The form is too large (over {MAX_BODY} bytes)."),
        )),
        Err(_) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "The form could not be read.",
        )),
    }
}

fn boundary(content_type: &str) -> Result<String, Refusal> {
    multer::parse_boundary(content_type).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "The multipart form has no boundary in its Content-Type.",
        )
    })
}

/// The values of every `vote` field of `vote=a&submit=go`, percent- and
/// `+`-decoded (bytes that decode to no UTF-8 become U+FFFD).
fn url_encoded_votes(body: &[u8]) -> Result<Vec<String>, Refusal> {
    if std::str::from_utf8(body).is_err() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "The form could not be read as text.",
        ));
    }
    Ok(form_urlencoded::parse(body)
        .filter(|(name, _)| name == "vote")
        .map(|(_, value)| value.into_owned())
        .collect())
}

/// The values of every `vote` field of a `multipart/form-data` body.
async fn multipart_votes(body: Bytes, boundary: String) -> multer::Result<Vec<String>> {
    let mut form = multer::Multipart::with_reader(std::io::Cursor::new(body), boundary);
    let mut votes = Vec::new();
    while let Some(field) = form.next_field().await? {
        if field.name() == Some("vote") {
            votes.push(field.text().await?);
        }
    }
    Ok(votes)
}
