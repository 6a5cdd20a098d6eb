//! Identity functions over every WIT type kind (JSON <-> Val tests), an
//! exported interface (`calc`) and a capability-error case (`try-it`).
wit_bindgen::generate!({ world: "all-types" });

struct G;

impl Guest for G {
    fn echo_bool(v: bool) -> bool { v }
    fn echo_s8(v: i8) -> i8 { v }
    fn echo_u8(v: u8) -> u8 { v }
    fn echo_s16(v: i16) -> i16 { v }
    fn echo_u16(v: u16) -> u16 { v }
    fn echo_s32(v: i32) -> i32 { v }
    fn echo_u32(v: u32) -> u32 { v }
    fn echo_s64(v: i64) -> i64 { v }
    fn echo_u64(v: u64) -> u64 { v }
    fn echo_f32(v: f32) -> f32 { v }
    fn echo_f64(v: f64) -> f64 { v }
    fn echo_char(v: char) -> char { v }
    fn echo_string(v: String) -> String { v }
    fn echo_list(v: Vec<u32>) -> Vec<u32> { v }
    fn echo_point(v: Point) -> Point { v }
    fn echo_tuple(v: (u8, String, bool)) -> (u8, String, bool) { v }
    fn echo_shape(v: Shape) -> Shape { v }
    fn echo_color(v: Color) -> Color { v }
    fn echo_option(v: Option<Vec<String>>) -> Option<Vec<String>> { v }
    fn echo_result(v: Result<u32, String>) -> Result<u32, String> { v }
    fn echo_perms(v: Perms) -> Perms { v }
    fn echo_nested(v: Vec<Item>) -> Vec<Item> { v }

    fn mix(a: u32, b: String, c: Vec<Point>) -> String {
        let sx: i64 = c.iter().map(|p| i64::from(p.x)).sum();
        let sy: i64 = c.iter().map(|p| i64::from(p.y)).sum();
        let labels: Vec<&str> = c.iter().filter_map(|p| p.label.as_deref()).collect();
        format!("a={a} b={b} points={} sum-x={sx} sum-y={sy} labels={}", c.len(), labels.join(","))
    }

    fn try_it(v: String) -> Result<String, String> {
        if v == "fail" { Err("capability error: fail".to_string()) } else { Ok(v) }
    }

    fn nothing() {}
}

impl exports::warden_test::all_types::calc::Guest for G {
    fn add(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }
}

export!(G);
