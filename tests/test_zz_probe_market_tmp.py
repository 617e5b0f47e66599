import re, uuid
from tests.test_web_market import *  # noqa
from tests.test_web_market import _holding, _sell, _sell_row, _key_of_row, _open_listings

def test_probe(client, people, session_factory):
    _, investment_id = _holding(session_factory, people)
    seller, csrf = logged_in(client, people["seller"])
    a = _sell(seller, csrf, investment_id, str(uuid.uuid4()), "5000.00", "a lot")
    print("BADPRICE", re.findall(r'<span class="error"[^>]*>[^<]+', a.text))
    a = _sell(seller, csrf, investment_id, str(uuid.uuid4()), "", "")
    print("EMPTY", re.findall(r'<span class="error"[^>]*>[^<]+', a.text), re.findall(r'role="alert">[^<]+', a.text))
    assert _sell(seller, csrf, investment_id, str(uuid.uuid4()), "14000.00", "100").status_code == 303
    (listing,) = _open_listings(session_factory, investment_id)
    buyer, bc = logged_in(client, people["buyer"])
    p = buyer.post(f"/app/investor/market/listings/{listing.id}/purchase", data={"csrf_token": bc, "idempotency_key": str(uuid.uuid4())})
    print("POOR", p.status_code, re.findall(r'role="alert">[^<]+', p.text))
    p = buyer.post(f"/app/investor/market/listings/{listing.id}/purchase", data={"csrf_token": bc, "idempotency_key": str(uuid.uuid4()), "principal": "x"})
    print("X", p.status_code, re.findall(r'<span class="error"[^>]*>[^<]+', p.text))
