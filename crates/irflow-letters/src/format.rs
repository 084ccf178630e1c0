//! Dates and times in each language's own style. Templates never format dates:
//! they print the strings made here.
//!
//! English (US): "Tuesday, December 8, 2026", "9:40 AM", "Tuesday, December 8, 2026 at 9:40 AM".
//! Spanish: "martes, 8 de diciembre de 2026", "9:40", "martes, 8 de diciembre de 2026, a las 9:40"
//! (24-hour clock; "a la 1:05" for one o'clock).

use jiff::ZonedDateTime;
use jiff::civil::{Date, Time, Weekday};

use crate::Lang;

const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const ES_MONTHS: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];

fn month_name(lang: Lang, month: i8) -> &'static str {
    let names = match lang {
        Lang::En => &EN_MONTHS,
        Lang::Es => &ES_MONTHS,
    };
    usize::try_from(month - 1)
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or("")
}

/// The weekday's name.
pub fn weekday(lang: Lang, day: Weekday) -> &'static str {
    match (lang, day) {
        (Lang::En, Weekday::Monday) => "Monday",
        (Lang::En, Weekday::Tuesday) => "Tuesday",
        (Lang::En, Weekday::Wednesday) => "Wednesday",
        (Lang::En, Weekday::Thursday) => "Thursday",
        (Lang::En, Weekday::Friday) => "Friday",
        (Lang::En, Weekday::Saturday) => "Saturday",
        (Lang::En, Weekday::Sunday) => "Sunday",
        (Lang::Es, Weekday::Monday) => "lunes",
        (Lang::Es, Weekday::Tuesday) => "martes",
        (Lang::Es, Weekday::Wednesday) => "miércoles",
        (Lang::Es, Weekday::Thursday) => "jueves",
        (Lang::Es, Weekday::Friday) => "viernes",
        (Lang::Es, Weekday::Saturday) => "sábado",
        (Lang::Es, Weekday::Sunday) => "domingo",
    }
}

/// A date with its weekday: "Tuesday, December 8, 2026" / "martes, 8 de diciembre de 2026".
pub fn date(lang: Lang, d: Date) -> String {
    let day = weekday(lang, d.weekday());
    let month = month_name(lang, d.month());
    match lang {
        Lang::En => format!("{day}, {month} {}, {}", d.day(), d.year()),
        Lang::Es => format!("{day}, {} de {month} de {}", d.day(), d.year()),
    }
}

/// A date without the weekday or year, for short messages: "December 8" / "8 de diciembre".
pub fn short_date(lang: Lang, d: Date) -> String {
    let month = month_name(lang, d.month());
    match lang {
        Lang::En => format!("{month} {}", d.day()),
        Lang::Es => format!("{} de {month}", d.day()),
    }
}

/// A time of day: "9:40 AM", "12:05 PM" / "9:40", "14:05".
pub fn time(lang: Lang, t: Time) -> String {
    let (h, m) = (t.hour(), t.minute());
    match lang {
        Lang::En => {
            let suffix = if h < 12 { "AM" } else { "PM" };
            let h12 = match h % 12 {
                0 => 12,
                other => other,
            };
            format!("{h12}:{m:02} {suffix}")
        }
        Lang::Es => format!("{h}:{m:02}"),
    }
}

/// A date and time: "Tuesday, December 8, 2026 at 9:40 AM" /
/// "martes, 8 de diciembre de 2026, a las 9:40".
pub fn datetime(lang: Lang, z: &ZonedDateTime) -> String {
    let d = date(lang, z.date());
    let t = time(lang, z.time());
    match lang {
        Lang::En => format!("{d} at {t}"),
        Lang::Es if z.hour() == 1 => format!("{d}, a la {t}"),
        Lang::Es => format!("{d}, a las {t}"),
    }
}

/// A time with its preposition, for sentences: "at 9:40 AM" / "a las 9:40".
pub fn at_time(lang: Lang, t: Time) -> String {
    match lang {
        Lang::En => format!("at {}", time(lang, t)),
        Lang::Es if t.hour() == 1 => format!("a la {}", time(lang, t)),
        Lang::Es => format!("a las {}", time(lang, t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date as d, time as t};

    fn zoned(y: i16, mo: i8, da: i8, h: i8, mi: i8) -> ZonedDateTime {
        d(y, mo, da)
            .at(h, mi, 0, 0)
            .to_zoned_datetime(jiff::tz::TimeZone::get("America/New_York").expect("zone"))
            .expect("valid")
    }

    #[test]
    fn english_dates_and_times() {
        assert_eq!(date(Lang::En, d(2026, 12, 8)), "Tuesday, December 8, 2026");
        assert_eq!(
            datetime(Lang::En, &zoned(2026, 12, 8, 9, 40)),
            "Tuesday, December 8, 2026 at 9:40 AM"
        );
        assert_eq!(time(Lang::En, t(0, 5, 0, 0)), "12:05 AM");
        assert_eq!(time(Lang::En, t(12, 0, 0, 0)), "12:00 PM");
        assert_eq!(time(Lang::En, t(15, 30, 0, 0)), "3:30 PM");
        assert_eq!(short_date(Lang::En, d(2027, 1, 1)), "January 1");
    }

    #[test]
    fn spanish_dates_and_times() {
        assert_eq!(
            date(Lang::Es, d(2026, 12, 8)),
            "martes, 8 de diciembre de 2026"
        );
        assert_eq!(
            datetime(Lang::Es, &zoned(2026, 12, 8, 9, 40)),
            "martes, 8 de diciembre de 2026, a las 9:40"
        );
        assert_eq!(
            datetime(Lang::Es, &zoned(2026, 11, 4, 13, 5)),
            "miércoles, 4 de noviembre de 2026, a las 13:05"
        );
        assert_eq!(at_time(Lang::Es, t(1, 5, 0, 0)), "a la 1:05");
        assert_eq!(at_time(Lang::En, t(1, 5, 0, 0)), "at 1:05 AM");
        assert_eq!(short_date(Lang::Es, d(2027, 3, 6)), "6 de marzo");
        assert_eq!(date(Lang::Es, d(2027, 3, 6)), "sábado, 6 de marzo de 2027");
    }
}
