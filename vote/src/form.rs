//! Reading the vote form: `vote=<option id>`, URL-encoded as our page and the
//! reference's send it, or `multipart/form-data` as `curl -F vote=a` does.
//! Anything else is refused with a status and a sentence a person can act on.

use ballot::{VoteOption, VoteOptions};
use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, RawStr, Status};
use tokio::io::AsyncReadExt;

/// The form is a few bytes; anything bigger is not from our page.
pub const MAX_BODY: usize = 1024;

pub struct Refusal {
    pub status: Status,
    pub message: String,
}

fn refuse(status: Status, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// The option the form chose, if the request is a well-formed vote.
pub async fn read_choice<'o>(
    content_type: Option<&ContentType>,
    data: Data<'_>,
    options: &'o VoteOptions,
) -> Result<&'o VoteOption, Refusal> {
    let multipart = match content_type {
        Some(kind) if kind.is_form() => None,
        Some(kind) if kind.is_form_data() => Some(boundary(kind)?),
        _ => {
            return Err(refuse(
                Status::UnsupportedMediaType,
                "Send the vote as a form (application/x-www-form-urlencoded \
                 or multipart/form-data).",
            ))
        }
    };
    // One byte over the limit tells a body that is too large. (Rocket's
    // `into_bytes` would zero an 8 KiB copy buffer for these few bytes.)
    let mut stream = data.open((MAX_BODY + 1).bytes());
    let mut body = Vec::with_capacity(stream.hint().max(64));
    stream
        .read_to_end(&mut body)
        .await
        .map_err(|_| refuse(Status::BadRequest, "The form could not be read."))?;
    if body.len() > MAX_BODY {
        return Err(refuse(
            Status::PayloadTooLarge,
            format!("The form is too large (over {MAX_BODY} bytes)."),
        ));
    }
    if body.trim_ascii().is_empty() {
        return Err(refuse(
            Status::BadRequest,
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
                    Status::BadRequest,
                    format!("The form could not be read: {e}."),
                )
            })?,
    };
    // Other fields (a submit button's, say) are ignored.
    let [id] = chosen.as_slice() else {
        return Err(refuse(
            Status::BadRequest,
            "The form needs exactly one `vote` field: pick an option.",
        ));
    };
    options.get(id).ok_or_else(|| {
        let known: Vec<&str> = options.iter().map(|o| o.id).collect();
        refuse(
            Status::BadRequest,
            format!(
                "There is no option {id:?}; choose one of {}.",
                known.join(", ")
            ),
        )
    })
}

fn boundary(content_type: &ContentType) -> Result<String, Refusal> {
    multer::parse_boundary(content_type.to_string()).map_err(|_| {
        refuse(
            Status::BadRequest,
            "The multipart form has no boundary in its Content-Type.",
        )
    })
}

/// The values of every `vote` field of `vote=a&submit=go`.
fn url_encoded_votes(body: &[u8]) -> Result<Vec<String>, Refusal> {
    let body = std::str::from_utf8(body)
        .map_err(|_| refuse(Status::BadRequest, "The form could not be read as text."))?;
    Ok(body
        .split('&')
        .filter_map(|field| {
            let (name, value) = RawStr::new(field).split_at_byte(b'=');
            (name.url_decode_lossy() == "vote").then(|| value.url_decode_lossy().into_owned())
        })
        .collect())
}

/// The values of every `vote` field of a `multipart/form-data` body.
async fn multipart_votes(body: Vec<u8>, boundary: String) -> multer::Result<Vec<String>> {
    let mut form = multer::Multipart::with_reader(std::io::Cursor::new(body), boundary);
    let mut votes = Vec::new();
    while let Some(field) = form.next_field().await? {
        if field.name() == Some("vote") {
            votes.push(field.text().await?);
        }
    }
    Ok(votes)
}
