//! Reading the vote form (`vote=<option id>`, URL-encoded). Anything else is
//! refused with a status and a sentence a person can act on.

use ballot::{VoteOption, VoteOptions};
use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, RawStr, Status};

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
    if !content_type.is_some_and(|kind| kind.is_form()) {
        return Err(refuse(
            Status::UnsupportedMediaType,
            "Send the vote as a form (application/x-www-form-urlencoded).",
        ));
    }
    let body = data
        .open(MAX_BODY.bytes())
        .into_string()
        .await
        .map_err(|_| refuse(Status::BadRequest, "The form could not be read as text."))?;
    if !body.is_complete() {
        return Err(refuse(
            Status::PayloadTooLarge,
            format!("The form is too large (over {MAX_BODY} bytes)."),
        ));
    }
    if body.trim().is_empty() {
        return Err(refuse(
            Status::BadRequest,
            "The form was empty: pick an option.",
        ));
    }
    let mut chosen = body.split('&').filter_map(|field| {
        let (name, value) = RawStr::new(field).split_at_byte(b'=');
        (name.url_decode_lossy() == "vote").then(|| value.url_decode_lossy())
    });
    let (Some(id), None) = (chosen.next(), chosen.next()) else {
        return Err(refuse(
            Status::BadRequest,
            "The form needs exactly one `vote` field: pick an option.",
        ));
    };
    options.get(&id).ok_or_else(|| {
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
