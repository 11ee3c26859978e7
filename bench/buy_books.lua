-- wrk: shoppers buy one of the seven books at random (POST /bookstore/books/<id>/buy), one
-- write each; 409 (out of stock) would count as an error, so the script restocks first.
math.randomseed(os.time())
request = function()
  return wrk.format("POST", "/bookstore/books/" .. math.random(1, 7) .. "/buy")
end
