print("lesson-dp: coming with lesson 1")
